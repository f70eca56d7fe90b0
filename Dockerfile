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
ENTRYPOINT ["/analyticsd"]
CMD ["serve"]
