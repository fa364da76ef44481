import Foundation

/// Where and how to connect to the broker: parsed from an `amqp://` or `amqps://` URL, then adjustable field by field.
public struct BrokerConfiguration: Sendable {
    /// Broker host name or address.
    public var host: String
    /// Broker TCP port.
    public var port: Int
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

    /// Parses `amqp://user:pass@host:port/vhost` (or `amqps://`).
    ///
    /// Defaults: `guest`/`guest`, `localhost`, port 5672 (5671 for `amqps`), vhost `/`. The vhost path is
    /// percent-decoded (`%2f` is `/`; an empty path is `/`). The query item `heartbeat=SECONDS` is honoured.
    /// Throws a ``MessagingError`` with code `.invalidConfiguration` whose description names the problem.
    public init(url: String) throws {
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
        self.host = host.removingPercentEncoding ?? host
        if self.host.isEmpty { self.host = "localhost" }
        if let port = components.port {
            guard (1...65_535).contains(port) else { throw invalid("port \(port) is out of range") }
            self.port = port
        } else {
            port = useTLS ? 5671 : 5672
        }
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

    /// The URL with the password masked (`amqp://guest:***@host:5672/%2f`), safe to log.
    public var redactedURL: String {
        let userPart = Self.encode(user, allowed: .urlUserAllowed)
        let hostPart = host.contains(":") ? "[\(host)]" : host
        var vhostAllowed = CharacterSet.urlPathAllowed
        vhostAllowed.remove("/")
        let vhostPart = Self.encode(virtualHost, allowed: vhostAllowed).replacingOccurrences(of: "%2F", with: "%2f")
        return "\(useTLS ? "amqps" : "amqp")://\(userPart):***@\(hostPart):\(port)/\(vhostPart)"
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
        return text
    }

    /// Fields for `dump()` and debuggers, with the password masked.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "host": host, "port": port, "user": user, "password": "***", "virtualHost": virtualHost,
                "useTLS": useTLS, "caCertificatePath": caCertificatePath as Any,
                "clientCertificatePath": clientCertificatePath as Any, "clientKeyPath": clientKeyPath as Any,
                "heartbeat": heartbeat, "connectionName": connectionName, "reconnectDelay": reconnectDelay,
                "shutdownTimeout": shutdownTimeout,
            ],
            displayStyle: .struct)
    }
}
