/// Where a PostgreSQL database is and how to log in: what a `postgres://` URL names. `description` never shows the
/// password.
public struct PostgresEndpoint: Sendable, Equatable, CustomStringConvertible {
    /// How the connection uses TLS (the URL's `sslmode`).
    public enum TLSMode: String, Sendable, Equatable {
        /// Plain TCP.
        case disable
        /// TLS when the server offers it, else plain TCP (libpq's default).
        case prefer
        /// TLS with the server's certificate verified against the system's trust store; refused otherwise.
        case require
    }

    /// Host name or address.
    public var host: String
    /// TCP port (5432 unless the URL says otherwise).
    public var port: Int
    /// The role to log in as.
    public var username: String
    /// The role's password, if the server asks for one.
    public var password: String?
    /// The database.
    public var database: String
    /// TLS use.
    public var tls: TLSMode

    /// Creates an endpoint.
    public init(
        host: String, port: Int = 5432, username: String, password: String?, database: String, tls: TLSMode = .prefer
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
    }

    /// `postgres://user:***@host:port/database`: safe to log.
    public var description: String {
        let credentials = password == nil ? username : "\(username):***"
        let query = tls == .prefer ? "" : "?sslmode=\(tls.rawValue)"
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        return "postgres://\(credentials)@\(host):\(port)/\(database)\(query)"
    }
}
