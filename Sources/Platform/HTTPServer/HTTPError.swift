public import NIOHTTP1

/// An error that becomes an HTTP error response: `{"error": error, "detail": detail}` with `status`.
///
/// Throw it from a route handler to answer with that response; any other error thrown by a handler becomes
/// a 500 `internal_error` whose detail does not reveal the error.
public struct HTTPError: Error, Sendable {
    /// Status of the response.
    public var status: HTTPResponseStatus
    /// Short machine-readable code, such as `"not_found"` or `"validation_failed"`.
    public var error: String
    /// One human-readable sentence explaining the error to the client.
    public var detail: String
    /// Extra response headers, such as `Allow` or `Retry-After`.
    public var headers: HTTPHeaders

    /// Creates an error answered with `status` and the JSON body `{"error": error, "detail": detail}`.
    public init(_ status: HTTPResponseStatus, error: String, detail: String, headers: HTTPHeaders = [:]) {
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers
    }
}

extension HTTPError {
    static let internalError = HTTPError(
        .internalServerError, error: "internal_error", detail: "The server failed to handle the request.")

    static func badRequest(_ detail: String) -> HTTPError {
        HTTPError(.badRequest, error: "bad_request", detail: detail)
    }

    static func invalidBody(_ detail: String) -> HTTPError {
        HTTPError(.unprocessableEntity, error: "invalid_body", detail: detail)
    }
}
