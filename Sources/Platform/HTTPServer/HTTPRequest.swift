import Foundation
public import NIOHTTP1

/// A complete request as a route handler sees it: the body is fully read and within the configured limit.
public struct HTTPRequest: Sendable {
    /// Request method.
    public var method: HTTPMethod
    /// Percent-decoded path, without the query.
    public var path: String
    /// Percent-decoded query parameters (`+` is a space); the last of repeated names wins.
    public var query: [String: String]
    /// Request headers as received.
    public var headers: HTTPHeaders
    /// Request body, empty when there is none.
    public var body: [UInt8]
    /// Values of the route pattern's `{name}` segments, percent-decoded.
    public var pathParameters: [String: String]

    /// Creates a request, for calling handlers directly in tests.
    public init(
        method: HTTPMethod, path: String, query: [String: String] = [:], headers: HTTPHeaders = [:],
        body: [UInt8] = [], pathParameters: [String: String] = [:]
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.pathParameters = pathParameters
    }

    /// Decodes the body as JSON (dates as ISO 8601, unknown fields ignored).
    ///
    /// - Throws: ``HTTPError`` 422 `invalid_body` whose detail names the missing or invalid field, or says that the
    ///   body is not valid JSON.
    public func decodeJSON<T: Decodable>(_ type: T.Type) throws -> T {
        guard !self.body.isEmpty else {
            throw HTTPError.invalidBody("The request body is empty; expected a JSON document.")
        }
        do {
            return try JSONCoding.decode(type, from: self.body)
        } catch let error as DecodingError {
            throw HTTPError.invalidBody(Self.describe(error))
        } catch {
            throw HTTPError.invalidBody("The request body is not valid JSON.")
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, let context):
            return "Missing field '\(fieldName(context.codingPath + [key]))'."
        case .valueNotFound(_, let context) where !context.codingPath.isEmpty:
            return "Field '\(fieldName(context.codingPath))' must not be null."
        case .typeMismatch(let type, let context) where !context.codingPath.isEmpty:
            return "Field '\(fieldName(context.codingPath))' has the wrong type; expected \(typeName(type))."
        case .dataCorrupted(let context) where !context.codingPath.isEmpty:
            return "Field '\(fieldName(context.codingPath))' is invalid: \(context.debugDescription)"
        case .dataCorrupted:
            return "The request body is not valid JSON."
        case .typeMismatch(let type, _), .valueNotFound(let type, _):
            return "The request body has the wrong shape; expected \(typeName(type))."
        @unknown default:
            return "The request body could not be decoded."
        }
    }

    /// Renders a coding path as `items[0].name`.
    private static func fieldName(_ path: [any CodingKey]) -> String {
        var name = ""
        for key in path {
            if let index = key.intValue, key.stringValue.hasPrefix("Index ") || key.stringValue == "\(index)" {
                name += "[\(index)]"
            } else {
                name += name.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return name
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        case is Int.Type, is Int64.Type, is Int32.Type, is UInt.Type, is UInt64.Type: "an integer"
        case is Double.Type, is Float.Type: "a number"
        case is [String: Any].Type: "an object"
        default: "\(type)"
        }
    }
}

extension HTTPRequest {
    /// Builds a request from a parsed head; the path parameters are filled in by the router.
    ///
    /// - Throws: ``HTTPError`` 400 when the target is not an origin-form path or its percent-encoding is invalid.
    init(head: HTTPRequestHead, body: [UInt8]) throws {
        let target = head.uri.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let rawPath = parts[0]
        guard rawPath.hasPrefix("/"), let path = String(rawPath).removingPercentEncoding else {
            throw HTTPError.badRequest("The request target must be a path starting with '/'.")
        }
        var query: [String: String] = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let nameAndValue = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard let name = Self.decodeQueryComponent(nameAndValue[0]),
                    let value = Self.decodeQueryComponent(nameAndValue.count == 2 ? nameAndValue[1] : "")
                else {
                    throw HTTPError.badRequest("The query string has an invalid percent-encoding.")
                }
                query[name] = value
            }
        }
        self.init(method: head.method, path: path, query: query, headers: head.headers, body: body)
    }

    private static func decodeQueryComponent(_ component: Substring) -> String? {
        component.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }

    /// The raw (still percent-encoded) path split into non-empty segments, each then decoded; `nil` when a
    /// segment's percent-encoding is invalid. Splitting before decoding keeps `%2F` inside its segment.
    static func segments(ofTarget uri: String) -> [String]? {
        let rawPath = uri.prefix { $0 != "?" && $0 != "#" }
        var segments: [String] = []
        for raw in rawPath.split(separator: "/") {
            guard let segment = String(raw).removingPercentEncoding else { return nil }
            segments.append(segment)
        }
        return segments
    }
}
