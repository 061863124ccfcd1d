# syntax=docker/dockerfile:1
# sigwatch: a static binary on distroless, as a non-root user.
FROM golang:1.26 AS build
WORKDIR /src
ENV GOTOOLCHAIN=local CGO_ENABLED=0
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
ARG VERSION=dev
RUN go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/sigwatch ./cmd/sigwatch

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sigwatch /sigwatch
USER 65532:65532
ENTRYPOINT ["/sigwatch"]
CMD ["manager"]
