public import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// An HTTP response as tests look at it.
public struct TestHTTPResponse: Sendable {
    /// The status code.
    public var status: Int
    /// The body as received.
    public var body: Data
    /// Header names in lower case.
    public var headers: [String: String]

    /// The body as a JSON object (empty when it is not one).
    public var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
}

/// Sends one request to a server on 127.0.0.1. `json` is serialised as the body with `Content-Type: application/json`.
public func httpRequest(
    _ method: String, port: Int, path: String, json: Any? = nil, body: Data? = nil, headers: [String: String] = [:]
) async throws -> TestHTTPResponse {
    var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
    request.httpMethod = method
    request.timeoutInterval = 15
    if let json {
        request.httpBody = try JSONSerialization.data(withJSONObject: json)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
    } else if let body {
        request.httpBody = body
    }
    for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
    // The request runs in a task of its own, which a cancelled test does not cancel: cancelling an in-flight
    // `URLSession.data(for:)` can deadlock swift-corelibs-foundation (and with it the whole test run), while an
    // uncancelled request ends by itself within `timeoutInterval`.
    let (data, response) = try await Task { [request] in try await URLSession.shared.data(for: request) }.value
    guard let http = response as? HTTPURLResponse else { throw TestFailure("not an HTTP response") }
    var fields: [String: String] = [:]
    for (key, value) in http.allHeaderFields { fields["\(key)".lowercased()] = "\(value)" }
    return TestHTTPResponse(status: http.statusCode, body: data, headers: fields)
}

/// Something a test reaches over HTTP on a port of this machine.
public protocol LocalHTTPService: Sendable {
    /// The port it listens on.
    var port: Int { get }
}

extension LocalHTTPService {
    /// One request to `path`, with a JSON body made of `json` or the raw `body`.
    public func call(
        _ method: String, _ path: String, json: Any? = nil, body: Data? = nil, headers: [String: String] = [:]
    ) async throws -> TestHTTPResponse {
        try await httpRequest(method, port: port, path: path, json: json, body: body, headers: headers)
    }

    /// `POST /users` with a name and an email.
    public func create(_ name: String, _ email: String, headers: [String: String] = [:]) async throws -> TestHTTPResponse {
        try await call("POST", "/users", json: ["name": name, "email": email], headers: headers)
    }
}
