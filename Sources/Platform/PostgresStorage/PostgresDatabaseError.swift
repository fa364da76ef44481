import PostgresNIO

/// A PostgreSQL failure, reduced to what callers decide on and what may be logged: the SQLSTATE and the server's
/// message (postgres-nio hides both behind a generic description to avoid leaking data; neither carries passwords).
public struct PostgresDatabaseError: Error, CustomStringConvertible, Sendable {
    /// The five-character SQLSTATE, nil when the server did not answer (connection refused, closed, ...).
    public var sqlState: String?
    /// The server's message, or what went wrong on the client side.
    public var message: String

    /// Creates an error.
    public init(sqlState: String?, message: String) {
        self.sqlState = sqlState
        self.message = message
    }

    /// Reduces any error a postgres-nio call throws.
    public init(_ error: any Error) {
        if let error = error as? PostgresDatabaseError {
            self = error
        } else if let error = error as? PSQLError {
            if let info = error.serverInfo {
                sqlState = info[.sqlState]
                message = [info[.message], info[.detail]].compactMap { $0 }.joined(separator: ": ")
            } else {
                sqlState = nil
                message = "\(error.code)" + (error.underlying.map { ": \($0)" } ?? "")
            }
        } else {
            sqlState = nil
            message = "\(error)"
        }
    }

    /// A unique constraint refused the change (23505).
    public var isUniqueViolation: Bool { sqlState == "23505" }

    /// The server refused a value the statement carried, so the same statement with the same values would always
    /// fail: a data exception (class 22: NUL or invalid text, a number out of range, ...), an integrity constraint
    /// (class 23), or a value beyond a limit of the server (54000, e.g. an index row too big).
    public var isCausedByData: Bool {
        guard let sqlState else { return false }
        return sqlState.hasPrefix("22") || sqlState.hasPrefix("23") || sqlState == "54000"
    }

    /// The transaction lost a race the server resolved by aborting it (deadlock 40P01, serialization 40001):
    /// running it again is safe.
    public var isRetryable: Bool { sqlState == "40P01" || sqlState == "40001" }

    public var description: String {
        sqlState.map { "PostgreSQL \($0): \(message)" } ?? "PostgreSQL: \(message)"
    }
}
