package api

import (
	"encoding/json"
	"net/http"
)

// errorBody is the one error shape: {"error":{"code","message"}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

// errorDetail names the error for programs (code) and people (message).
type errorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"requestId,omitempty"`
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"could not encode the response"}}`)
	}
	writeBody(w, status, append(b, '\n'))
}

// Header values set on every answer, shared (net/http does not modify
// them) so that setting one allocates nothing.
var (
	contentTypeJSON = []string{"application/json; charset=utf-8"}
	nosniff         = []string{"nosniff"}
)

// writeBody writes an encoded JSON body with status.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["X-Content-Type-Options"] = nosniff
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeError writes the error shape, tagged with the request id so a user
// can quote it and an operator can find the log line.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	writeJSON(w, status, errorBody{Error: errorDetail{Code: code, Message: message, RequestID: requestID(r.Context())}})
}
