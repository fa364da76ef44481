import CSQLite

/// An error reported by SQLite, or by this layer when it is misused or closed.
public struct DatabaseError: Error, CustomStringConvertible, Sendable {
    /// A coarse error category, mapped from SQLite's primary result code.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case constraint, busy, locked, readOnly, full, ioError, corrupt, cantOpen, notADatabase
            case interrupted, tooBig, misuse, closed, other
        }

        private let base: Base

        private init(_ base: Base) { self.base = base }

        /// A constraint failed (UNIQUE, PRIMARY KEY, FOREIGN KEY, CHECK, NOT NULL).
        public static let constraint = Code(.constraint)
        /// The database file is locked by another connection and the busy timeout ran out.
        public static let busy = Code(.busy)
        /// A table is locked by this same connection (SQLITE_LOCKED).
        public static let locked = Code(.locked)
        /// The database or connection is read-only.
        public static let readOnly = Code(.readOnly)
        /// The disk is full.
        public static let full = Code(.full)
        /// An operating-system I/O error.
        public static let ioError = Code(.ioError)
        /// The database file is malformed.
        public static let corrupt = Code(.corrupt)
        /// The database file could not be opened (missing directory, permissions, ...).
        public static let cantOpen = Code(.cantOpen)
        /// The file is not an SQLite database.
        public static let notADatabase = Code(.notADatabase)
        /// The operation was interrupted.
        public static let interrupted = Code(.interrupted)
        /// A string or blob is too big.
        public static let tooBig = Code(.tooBig)
        /// The API was used incorrectly (wrong parameter count, several statements where one is expected, ...).
        public static let misuse = Code(.misuse)
        /// The connection, writer or reader was already closed.
        public static let closed = Code(.closed)
        /// Any other SQLite error (including SQL syntax errors).
        public static let other = Code(.other)

        /// The category's name, e.g. `readOnly`.
        public var description: String { base.rawValue }

        init(resultCode: Int32) {
            switch resultCode & 0xFF {
            case SQLITE_CONSTRAINT: self = .constraint
            case SQLITE_BUSY: self = .busy
            case SQLITE_LOCKED: self = .locked
            case SQLITE_READONLY: self = .readOnly
            case SQLITE_FULL: self = .full
            case SQLITE_IOERR: self = .ioError
            case SQLITE_CORRUPT: self = .corrupt
            case SQLITE_CANTOPEN: self = .cantOpen
            case SQLITE_NOTADB: self = .notADatabase
            case SQLITE_INTERRUPT: self = .interrupted
            case SQLITE_TOOBIG: self = .tooBig
            case SQLITE_MISUSE, SQLITE_RANGE: self = .misuse
            default: self = .other
            }
        }
    }

    /// The error's category.
    public let code: Code
    /// SQLite's extended result code (e.g. 2067 for SQLITE_CONSTRAINT_UNIQUE); SQLITE_MISUSE for errors of this layer.
    public let resultCode: Int32
    /// SQLite's error message, or this layer's explanation.
    public let message: String
    /// The SQL that failed, when there was one.
    public let sql: String?

    init(code: Code? = nil, resultCode: Int32, message: String, sql: String? = nil) {
        self.code = code ?? Code(resultCode: resultCode)
        self.resultCode = resultCode
        self.message = message
        self.sql = sql
    }

    /// True when a UNIQUE or PRIMARY KEY constraint was violated (e.g. a duplicate key on insert).
    public var isUniqueConstraintViolation: Bool {
        resultCode == Self.constraintUnique || resultCode == Self.constraintPrimaryKey
    }

    // Extended result codes are function-like macros in sqlite3.h, which Swift does not import.
    static let constraintPrimaryKey: Int32 = SQLITE_CONSTRAINT | (6 << 8)
    static let constraintUnique: Int32 = SQLITE_CONSTRAINT | (8 << 8)

    /// One line: category, extended result code, message and the failing SQL.
    public var description: String {
        var text = "DatabaseError(\(code), \(resultCode)): \(message)"
        if let sql { text += " [SQL: \(sql)]" }
        return text
    }

    static func misuse(_ message: String, sql: String? = nil) -> DatabaseError {
        DatabaseError(code: .misuse, resultCode: SQLITE_MISUSE, message: message, sql: sql)
    }

    static func closed(_ message: String) -> DatabaseError {
        DatabaseError(code: .closed, resultCode: SQLITE_MISUSE, message: message)
    }
}
