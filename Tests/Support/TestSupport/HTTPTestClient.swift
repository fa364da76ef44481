public import Foundation

#if canImport(FoundationNetworking)
public import FoundationNetworking
#endif

/// An HTTP response as tests look at it.
public struct TestHTTPResponse: Sendable {
    public var status: Int
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
    let (data, response) = try await URLSession.shared.data(for: request)
    guard let http = response as? HTTPURLResponse else { throw TestFailure("not an HTTP response") }
    var fields: [String: String] = [:]
    for (key, value) in http.allHeaderFields { fields["\(key)".lowercased()] = "\(value)" }
    return TestHTTPResponse(status: http.statusCode, body: data, headers: fields)
}

extension TestBroker {
    /// A new virtual host on the test broker (so a test's queues are its own), and its URL.
    public func makeVirtualHost(_ prefix: String) async throws -> String {
        let name = "\(prefix)-\(UUID().uuidString.prefix(8))"
        _ = try await ctl(["add_vhost", name])
        _ = try await ctl(["set_permissions", "-p", name, "guest", ".*", ".*", ".*"])
        let base = url.hasSuffix("/%2f") ? String(url.dropLast(4)) : url
        return "\(base)/\(name)"
    }

    /// Messages ready in a queue of a virtual host (nil when there is no such queue).
    public func messageCount(queue: String, virtualHostURL: String) async throws -> Int? {
        let vhost = String(virtualHostURL.split(separator: "/").last ?? "")
        let output = try await ctl(["list_queues", "-p", vhost, "-q", "--no-table-headers", "name", "messages"])
        for line in output.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            if fields.count == 2, fields[0] == queue { return Int(fields[1]) }
        }
        return nil
    }
}
