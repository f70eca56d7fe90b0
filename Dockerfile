# Build: docker build -t analyticsd .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/analyticsd ./cmd/analyticsd

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/analyticsd /analyticsd
USER nonroot:nonroot
EXPOSE 3000
# The image has no shell and no curl: the binary checks itself (GET /health on
# PORT; exit 0 when ok or degraded, 1 when down or silent for 3 s).
HEALTHCHECK --interval=5s --timeout=5s --start-period=5m --retries=3 \
	CMD ["/analyticsd", "healthcheck", "--timeout", "3s"]
ENTRYPOINT ["/analyticsd"]
CMD ["serve"]
