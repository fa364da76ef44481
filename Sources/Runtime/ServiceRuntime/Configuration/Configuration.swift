public import PostgresStorage
import Foundation
public import Logging
public import Messaging

/// A setting that cannot be used. The services print `description` as their one line before exiting.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    /// The environment variable (or flag) at fault, e.g. `RABBITMQ_URL`.
    public var setting: String
    /// What is wrong with its value.
    public var problem: String

    /// Creates an error.
    public init(setting: String, problem: String) {
        self.setting = setting
        self.problem = problem
    }

    public var description: String { "invalid configuration: \(setting): \(problem)" }
}

/// Parsers for the settings the services share. Flags win over the environment, the environment over defaults.
public enum Setting {
    /// The broker URL every service uses when `RABBITMQ_URL` is not set.
    public static let defaultBrokerURL = "amqp://guest:guest@localhost:5672/%2f"

    /// The value of a flag, else a non-empty environment variable, else nil.
    public static func value(_ flag: String?, env name: String, in environment: [String: String]) -> String? {
        if let flag { return flag }
        if let value = environment[name], !value.isEmpty { return value }
        return nil
    }

    /// The address an admin listener binds unless told otherwise: this machine only.
    public static let loopback = "127.0.0.1"
    /// The address a public listener binds unless told otherwise: every IPv4 interface.
    public static let everyInterface = "0.0.0.0"

    /// An address to bind: an IPv4 or IPv6 literal, or a host name (letters, digits, `-` and `.`).
    public static func host(_ text: String?, setting: String, default defaultHost: String) throws -> String {
        guard let text else { return defaultHost }
        var ipv4 = in_addr()
        var ipv6 = in6_addr()
        if inet_pton(AF_INET, text, &ipv4) == 1 || inet_pton(AF_INET6, text, &ipv6) == 1 { return text }
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        let isHostName =
            text.utf8.count <= 253
            && labels.allSatisfy { label in
                !label.isEmpty && label.utf8.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                    && label.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-") }
            }
        guard isHostName else {
            throw ConfigurationError(setting: setting, problem: "'\(text)' is not an IP address or a host name")
        }
        return text
    }

    /// A TCP port (0 picks a free one).
    public static func port(_ text: String?, setting: String, default defaultPort: Int) throws -> Int {
        guard let text else { return defaultPort }
        guard let port = Int(text), (0...65535).contains(port) else {
            throw ConfigurationError(setting: setting, problem: "'\(text)' is not a port number (0-65535)")
        }
        return port
    }

    /// A positive whole number.
    public static func positiveInteger(_ text: String?, setting: String, default value: Int) throws -> Int {
        guard let text else { return value }
        guard let number = Int(text), number > 0 else {
            throw ConfigurationError(setting: setting, problem: "'\(text)' is not a positive whole number")
        }
        return number
    }

    /// A log level name (`trace`, `debug`, `info`, `notice`, `warning`, `error`, `critical`).
    public static func logLevel(_ text: String?) throws -> Logger.Level {
        guard let text else { return .info }
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            let names = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
            throw ConfigurationError(setting: "LOG_LEVEL", problem: "'\(text)' is not one of \(names)")
        }
        return level
    }

    /// The broker from an `amqp://user:pass@host:port/vhost` URL (or a comma-separated list, one URL per cluster
    /// node), with the TLS files for `amqps://` and the queue type.
    ///
    /// `queueType` (`AMQP_QUEUE_TYPE`) is `classic` (the default) or `quorum`. `caFile` (`AMQP_CA_FILE`) replaces
    /// the default trust store; `clientCertificate` (`AMQP_CLIENT_CERT`) and
    /// `clientKey` (`AMQP_CLIENT_KEY`) go together. Each file must exist and be readable, and TLS files are refused
    /// with a plain `amqp://` URL (they would be ignored and the password sent in clear). `confirmTimeout`
    /// (`AMQP_CONFIRM_TIMEOUT`) is the seconds a publisher waits for a confirm before it gives the connection up for
    /// the next node: default 5, `0` waits forever.
    public static func broker(
        _ text: String?, heartbeat: String?, caFile: String? = nil, clientCertificate: String? = nil,
        clientKey: String? = nil, queueType: String? = nil, confirmTimeout: String? = nil
    ) throws -> BrokerConfiguration {
        var configuration: BrokerConfiguration
        do {
            configuration = try BrokerConfiguration(url: text ?? defaultBrokerURL)
        } catch let error as MessagingError {
            throw ConfigurationError(setting: "RABBITMQ_URL", problem: error.detail)
        }
        let seconds = try positiveInteger(heartbeat, setting: "AMQP_HEARTBEAT", default: 30)
        configuration.heartbeat = .seconds(seconds)
        if let confirmTimeout {
            guard let seconds = Int(confirmTimeout), seconds >= 0 else {
                throw ConfigurationError(
                    setting: "AMQP_CONFIRM_TIMEOUT",
                    problem: "'\(confirmTimeout)' is not a whole number of seconds (0 waits forever)")
            }
            configuration.confirmTimeout = .seconds(seconds)
        }

        let files = [("AMQP_CA_FILE", caFile), ("AMQP_CLIENT_CERT", clientCertificate), ("AMQP_CLIENT_KEY", clientKey)]
        for case let (setting, path?) in files {
            if !configuration.useTLS {
                throw ConfigurationError(
                    setting: setting, problem: "is set but RABBITMQ_URL is amqp://; use amqps:// for TLS")
            }
            try readableFile(path, setting: setting)
        }
        switch (clientCertificate, clientKey) {
        case (.some, nil):
            throw ConfigurationError(setting: "AMQP_CLIENT_KEY", problem: "is required with AMQP_CLIENT_CERT")
        case (nil, .some):
            throw ConfigurationError(setting: "AMQP_CLIENT_CERT", problem: "is required with AMQP_CLIENT_KEY")
        default:
            break
        }
        configuration.caCertificatePath = caFile
        configuration.clientCertificatePath = clientCertificate
        configuration.clientKeyPath = clientKey
        configuration.queueType = try Self.queueType(queueType)
        return configuration
    }

    /// `classic` (the default) or `quorum`, in any case.
    static func queueType(_ text: String?) throws -> QueueType {
        guard let text else { return .classic }
        guard let type = QueueType(rawValue: text.trimmingCharacters(in: .whitespaces).lowercased()) else {
            throw ConfigurationError(
                setting: "AMQP_QUEUE_TYPE",
                problem: "'\(text)' is not one of \(QueueType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return type
    }

    /// Checks that `path` names a readable regular file (or a link to one).
    static func readableFile(_ path: String, setting: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ConfigurationError(setting: setting, problem: "'\(path)' does not exist")
        }
        guard !isDirectory.boolValue else {
            throw ConfigurationError(setting: setting, problem: "'\(path)' is a directory, not a file")
        }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw ConfigurationError(setting: setting, problem: "'\(path)' is not readable")
        }
    }

    /// The file path of an SQLite database named as the original system did (SQLAlchemy's URL form):
    /// `sqlite:///relative/path`, `sqlite:////absolute/path`, or a plain file path.
    public static func sqlitePath(_ text: String, setting: String) throws -> String {
        var path = text
        if text.hasPrefix("sqlite:") {
            guard text.hasPrefix("sqlite:///") else {
                throw ConfigurationError(
                    setting: setting, problem: "'\(text)' must look like sqlite:///relative/path or sqlite:////abs/path")
            }
            path = String(text.dropFirst("sqlite:///".count))
            if let query = path.firstIndex(of: "?") { path = String(path[..<query]) }
            path = path.removingPercentEncoding ?? path
        } else if text.contains("://") {
            throw ConfigurationError(setting: setting, problem: "'\(text)' is not an SQLite URL or a file path")
        }
        guard !path.isEmpty, path != ":memory:" else {
            throw ConfigurationError(setting: setting, problem: "a file path is required (an in-memory database loses data)")
        }
        return path
    }
}

/// The database a service keeps its state in, from `USER_DB_URL` / `ORDER_DB_URL`.
public enum DatabaseLocation: Sendable, Equatable, CustomStringConvertible {
    /// An SQLite file (the default; one process owns it).
    case sqlite(path: String)
    /// A PostgreSQL database (several instances may share it), as its `postgres://` URL names it.
    case postgres(PostgresEndpoint)

    /// Safe to log: the path, or the URL with its password replaced by `***`.
    public var description: String {
        switch self {
        case .sqlite(let path): path
        case .postgres(let endpoint): endpoint.description
        }
    }
}

extension Setting {
    /// The database named by `text`: a `postgres://` or `postgresql://` URL, else an SQLite URL or path (see
    /// `sqlitePath`). Errors never repeat the password.
    public static func database(_ text: String, setting: String) throws -> DatabaseLocation {
        let lowered = text.lowercased()
        guard lowered.hasPrefix("postgres://") || lowered.hasPrefix("postgresql://") else {
            return .sqlite(path: try sqlitePath(text, setting: setting))
        }
        return .postgres(try postgres(text, setting: setting))
    }

    private static func postgres(_ text: String, setting: String) throws -> PostgresEndpoint {
        func problem(_ what: String) -> ConfigurationError {
            ConfigurationError(
                setting: setting,
                problem: "\(what) (expected postgres://user:password@host:port/database)")
        }
        guard let components = URLComponents(string: text) else { throw problem("not a valid URL") }
        guard let host = components.host, !host.isEmpty else { throw problem("the host is missing") }
        guard let user = components.user, !user.isEmpty else { throw problem("the user is missing") }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else { throw problem("the database name is missing") }
        let port = components.port ?? 5432
        guard (1...65535).contains(port) else { throw problem("the port is not 1-65535") }
        var tls = PostgresEndpoint.TLSMode.prefer
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let value = item.value.flatMap(PostgresEndpoint.TLSMode.init(rawValue:)) else {
                    throw ConfigurationError(
                        setting: setting, problem: "sslmode must be disable, prefer or require")
                }
                tls = value
            default:
                throw ConfigurationError(
                    setting: setting, problem: "unknown parameter '\(item.name)' (only sslmode is understood)")
            }
        }
        return PostgresEndpoint(
            host: host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port: port,
            // URLComponents hands out user, password and path percent-decoded.
            username: user, password: components.password, database: database, tls: tls)
    }
}
