import Foundation

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
