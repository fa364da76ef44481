import Foundation
public import NIOHTTP1

/// A complete response produced by a route handler.
///
/// The server adds `Content-Length` and `Connection` itself; set only the headers the handler means.
public struct HTTPResponse: Sendable {
    /// Status line of the response.
    public var status: HTTPResponseStatus
    /// Response headers.
    public var headers: HTTPHeaders
    /// Response body (omitted on the wire for HEAD requests and for 204/304).
    public var body: [UInt8]

    /// Creates a response from its parts.
    public init(status: HTTPResponseStatus, headers: HTTPHeaders = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON response (`Content-Type: application/json`) with `value` encoded by `JSONEncoder`
    /// (sorted keys, dates as ISO 8601). If `value` cannot be encoded the result is a 500 `internal_error`.
    public static func json<T: Encodable>(
        _ value: T, status: HTTPResponseStatus = .ok, headers: HTTPHeaders = [:]
    ) -> HTTPResponse {
        guard let body = try? JSONCoding.encode(value) else {
            return HTTPResponse(error: .internalError)
        }
        var headers = headers
        headers.replaceOrAdd(name: "content-type", value: "application/json")
        return HTTPResponse(status: status, headers: headers, body: body)
    }

    /// A text response with `contentType`, UTF-8 plain text unless told otherwise.
    public static func text(
        _ string: String, status: HTTPResponseStatus = .ok, contentType: String = "text/plain; charset=utf-8"
    ) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["content-type": contentType], body: Array(string.utf8))
    }

    /// A response without a body, such as `.noContent` or `.accepted`.
    public static func empty(_ status: HTTPResponseStatus) -> HTTPResponse {
        HTTPResponse(status: status)
    }
}

extension HTTPResponse {
    /// The one place an ``HTTPError`` becomes a response: `{"error": ..., "detail": ...}` as JSON.
    init(error: HTTPError) {
        struct Body: Encodable {
            var error: String
            var detail: String
        }
        var headers = error.headers
        headers.replaceOrAdd(name: "content-type", value: "application/json")
        // Two strings always encode; the fallback only keeps this initialiser non-throwing.
        let body = (try? JSONCoding.encode(Body(error: error.error, detail: error.detail))) ?? Array("{}".utf8)
        self.init(status: error.status, headers: headers, body: body)
    }
}

/// JSON settings shared by requests and responses.
enum JSONCoding {
    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return Array(try encoder.encode(value))
    }

    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let string = try container.decode(String.self)
            for style in [Date.ISO8601FormatStyle(includingFractionalSeconds: true), Date.ISO8601FormatStyle()] {
                if let date = try? style.parse(string) {
                    return date
                }
            }
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "Expected an ISO 8601 date such as 2026-11-24T10:00:00Z.")
        }
        return try decoder.decode(type, from: Data(bytes))
    }
}
