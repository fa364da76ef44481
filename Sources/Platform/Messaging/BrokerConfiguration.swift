import Foundation

/// Where and how to connect to the broker: parsed from an `amqp://` or `amqps://` URL (or a comma-separated list of
/// them, one per node of a cluster), then adjustable field by field.
public struct BrokerConfiguration: Sendable {
    /// One node of the broker: where its AMQP listener is.
    public struct Node: Sendable, Equatable {
        /// Host name or address.
        public var host: String
        /// TCP port.
        public var port: Int

        /// Creates a node address.
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    /// The nodes a connection is opened to, tried in this order (never empty). A connection that fails or is lost
    /// moves on to the next node at once; the reconnect backoff applies once every node has failed in a row.
    /// Credentials, vhost, TLS and heartbeat are the same for every node, as the nodes of a cluster share them.
    public var nodes: [Node]
    /// Host of the first node.
    public var host: String {
        get { nodes[0].host }
        set { nodes[0].host = newValue }
    }
    /// TCP port of the first node.
    public var port: Int {
        get { nodes[0].port }
        set { nodes[0].port = newValue }
    }
    /// User name for SASL PLAIN.
    public var user: String
    /// Password for SASL PLAIN. Never logged: use ``redactedURL``.
    public var password: String
    /// Virtual host, already percent-decoded (`"/"` is the default vhost).
    public var virtualHost: String
    /// Whether to connect with TLS (`amqps`), verifying the peer certificate and host name.
    public var useTLS: Bool
    /// PEM file with the CA certificates that TLS trusts instead of the system's; `nil` uses OpenSSL's default
    /// trust store (the system CAs, or `SSL_CERT_FILE` / `SSL_CERT_DIR`).
    public var caCertificatePath: String?
    /// PEM file with the client certificate (chain) presented to a broker that asks for one; needs ``clientKeyPath``.
    public var clientCertificatePath: String?
    /// PEM file with the unencrypted private key of ``clientCertificatePath``.
    public var clientKeyPath: String?
    /// Heartbeat interval proposed at login; the broker may lower it. `.zero` disables heartbeats.
    public var heartbeat: Duration = .seconds(30)
    /// Sent as the client property `connection_name`, shown in the management UI and `rabbitmqctl`.
    public var connectionName: String = ""
    /// Reconnect delays: the first retry waits the lower bound, each further one doubles up to the upper bound,
    /// with random jitter.
    public var reconnectDelay: ClosedRange<Duration> = .milliseconds(100) ... .seconds(10)
    /// The longest a connection takes to stop once asked (graceful shutdown or cancellation): outstanding confirms
    /// (or the consumer's `cancel-ok`) are awaited for half of it, the close handshake for the rest, and when it has
    /// passed the socket is shut down under whatever call still waits on it (a send to a broker that blocks us).
    public var shutdownTimeout: Duration = .seconds(10)
    /// The type of every queue this connection declares: `classic` (the original system's) or `quorum`.
    public var queueType: QueueType = .classic
    /// How long a publisher waits for the confirm of its oldest unconfirmed message before it gives the connection
    /// up: the calls in flight fail with `.connectionLost` (callers retry) and it reconnects to the next node. A
    /// quorum queue whose leader moved can otherwise hold a publish for minutes. `.zero` waits forever.
    public var confirmTimeout: Duration = .seconds(5)

    /// Parses `amqp://user:pass@host:port/vhost` (or `amqps://`), or a comma-separated list of such URLs, one per
    /// node of a cluster (`amqp://u:p@rabbit1/%2f,amqp://u:p@rabbit2/%2f`).
    ///
    /// Each URL is read by the same rules. Defaults: `guest`/`guest`, `localhost`, port 5672 (5671 for `amqps`),
    /// vhost `/`. The vhost path is percent-decoded (`%2f` is `/`; an empty path is `/`). The query item
    /// `heartbeat=SECONDS` is honoured. A comma separates nodes only where the next URL's scheme follows it, so a
    /// password may contain one. Every URL must give the same scheme, user, password, vhost and heartbeat: the nodes
    /// of one cluster share them. Throws a ``MessagingError`` with code `.invalidConfiguration` whose description
    /// names the problem (never the password).
    public init(url: String) throws {
        let parts = Self.splitNodeURLs(url)
        guard parts.count > 1 else {
            try self.init(nodeURL: url)
            return
        }
        var first: BrokerConfiguration?
        for (index, part) in parts.enumerated() {
            let label = "node \(index + 1) of \(parts.count)"
            guard !part.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw MessagingError(.invalidConfiguration, "invalid broker URL (\(label)): empty (a stray comma?)")
            }
            let node: BrokerConfiguration
            do {
                node = try BrokerConfiguration(nodeURL: part)
            } catch let error as MessagingError {
                let detail = error.detail.replacingOccurrences(
                    of: "invalid broker URL:", with: "invalid broker URL (\(label)):")
                throw MessagingError(.invalidConfiguration, detail)
            }
            guard var configuration = first else {
                first = node
                continue
            }
            let differences = [
                ("scheme", node.useTLS != configuration.useTLS), ("user", node.user != configuration.user),
                ("password", node.password != configuration.password),
                ("vhost", node.virtualHost != configuration.virtualHost),
                ("heartbeat", node.heartbeat != configuration.heartbeat),
            ].filter(\.1).map(\.0)
            guard differences.isEmpty else {
                throw MessagingError(
                    .invalidConfiguration,
                    "invalid broker URL (\(label)): its \(differences.joined(separator: ", ")) differ from node 1's;"
                        + " the nodes of a cluster share scheme, credentials, vhost and heartbeat")
            }
            configuration.nodes.append(contentsOf: node.nodes)
            first = configuration
        }
        self = first!
    }

    /// The URLs of a comma-separated list: split at each comma that the next URL's scheme follows.
    private static func splitNodeURLs(_ text: String) -> [String] {
        var parts: [String] = []
        var current = ""
        var rest = Substring(text)
        while let comma = rest.firstIndex(of: ",") {
            current += rest[..<comma]
            let after = rest[rest.index(after: comma)...]
            let next = after.drop(while: { $0 == " " }).lowercased()
            if next.hasPrefix("amqp://") || next.hasPrefix("amqps://") || next.isEmpty || next.hasPrefix(",") {
                parts.append(current)
                current = ""
            } else {
                current += ","
            }
            rest = after
        }
        parts.append(current + rest)
        return parts
    }

    /// Parses the URL of one node.
    private init(nodeURL url: String) throws {
        func invalid(_ problem: String) -> MessagingError {
            MessagingError(.invalidConfiguration, "invalid broker URL: \(problem)")
        }
        let trimmed = url.trimmingCharacters(in: .whitespaces)
        guard let components = URLComponents(string: trimmed) else {
            throw invalid("not a URL")
        }
        switch components.scheme?.lowercased() {
        case "amqp": useTLS = false
        case "amqps": useTLS = true
        case let other?: throw invalid("unsupported scheme '\(other)' (expected amqp or amqps)")
        case nil: throw invalid("missing scheme (expected amqp:// or amqps://)")
        }
        guard trimmed.range(of: "://") != nil else {
            throw invalid("missing '//' after the scheme")
        }
        var host = components.percentEncodedHost ?? ""
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
        }
        host = host.removingPercentEncoding ?? host
        if host.isEmpty { host = "localhost" }
        let port: Int
        if let given = components.port {
            guard (1...65_535).contains(given) else { throw invalid("port \(given) is out of range") }
            port = given
        } else {
            port = useTLS ? 5671 : 5672
        }
        nodes = [Node(host: host, port: port)]
        user = components.percentEncodedUser.map { $0.removingPercentEncoding ?? $0 } ?? "guest"
        password = components.percentEncodedPassword.map { $0.removingPercentEncoding ?? $0 } ?? "guest"

        var path = Substring(components.percentEncodedPath)
        if path.hasPrefix("/") { path = path.dropFirst() }
        if path.isEmpty {
            virtualHost = "/"
        } else {
            guard !path.contains("/") else {
                throw invalid("vhost '\(path)' has more than one path segment (write '/' as %2f)")
            }
            guard let decoded = String(path).removingPercentEncoding else {
                throw invalid("vhost '\(path)' is not valid percent-encoding")
            }
            virtualHost = decoded
        }
        for item in components.queryItems ?? [] where item.name == "heartbeat" {
            guard let value = item.value, let seconds = Int(value), seconds >= 0 else {
                throw invalid("heartbeat '\(item.value ?? "")' is not a whole number of seconds")
            }
            heartbeat = .seconds(seconds)
        }
    }

    /// The URL with the password masked (`amqp://guest:***@host:5672/%2f`), safe to log; for several nodes, their
    /// URLs comma-separated.
    public var redactedURL: String {
        nodes.indices.map { redactedURL(node: $0) }.joined(separator: ",")
    }

    /// The URL of node number `index` (0-based) with the password masked.
    func redactedURL(node index: Int) -> String {
        let userPart = Self.encode(user, allowed: .urlUserAllowed)
        let host = nodes[index].host
        let hostPart = host.contains(":") ? "[\(host)]" : host
        var vhostAllowed = CharacterSet.urlPathAllowed
        vhostAllowed.remove("/")
        let vhostPart = Self.encode(virtualHost, allowed: vhostAllowed).replacingOccurrences(of: "%2F", with: "%2f")
        return "\(useTLS ? "amqps" : "amqp")://\(userPart):***@\(hostPart):\(nodes[index].port)/\(vhostPart)"
    }

    /// The same settings with node number `index` (0-based) as the only node: what one connection attempt uses.
    func selectingNode(_ index: Int) -> BrokerConfiguration {
        var single = self
        single.nodes = [nodes[index]]
        return single
    }

    private static func encode(_ string: String, allowed: CharacterSet) -> String {
        string.addingPercentEncoding(withAllowedCharacters: allowed) ?? string
    }
}

extension BrokerConfiguration: CustomStringConvertible, CustomReflectable {
    /// The ``redactedURL`` and the TLS files: safe to log, so interpolating a configuration never shows the password.
    public var description: String {
        var text = redactedURL
        if let path = caCertificatePath { text += " ca=\(path)" }
        if let path = clientCertificatePath { text += " cert=\(path)" }
        if let path = clientKeyPath { text += " key=\(path)" }
        if queueType != .classic { text += " queues=\(queueType)" }
        return text
    }

    /// Fields for `dump()` and debuggers, with the password masked.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "nodes": nodes.map { "\($0.host):\($0.port)" }, "user": user, "password": "***",
                "virtualHost": virtualHost,
                "useTLS": useTLS, "caCertificatePath": caCertificatePath as Any,
                "clientCertificatePath": clientCertificatePath as Any, "clientKeyPath": clientKeyPath as Any,
                "heartbeat": heartbeat, "connectionName": connectionName, "reconnectDelay": reconnectDelay,
                "shutdownTimeout": shutdownTimeout, "confirmTimeout": confirmTimeout,
                "queueType": queueType,
            ],
            displayStyle: .struct)
    }
}

/// The type of the queues a connection declares. Every declaration says it, and RabbitMQ refuses (406
/// PRECONDITION_FAILED) to declare a queue that exists with another type: see ``MessagingError/Code/queueConflict``.
public enum QueueType: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Durable, without arguments: the original system's queues, on one node.
    case classic
    /// Durable with `x-queue-type: quorum`: replicated over a cluster's nodes by Raft, and counting deliveries in
    /// `x-delivery-count`.
    case quorum

    /// `classic` or `quorum`.
    public var description: String { rawValue }
}
