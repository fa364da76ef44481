import CSQLite
import Foundation

#if canImport(Glibc)
    import Glibc
    private let closeDescriptor = Glibc.close
#elseif canImport(Darwin)
    import Darwin
    private let closeDescriptor = Darwin.close
#endif

extension SQLiteConnection {
    /// How a `SQLiteConnection` is opened and configured.
    public struct Options: Sendable {
        /// SQLite's `PRAGMA synchronous` levels.
        public enum Synchronous: Sendable {
            /// No fsync; fast, loses data on power failure.
            case off
            /// In WAL mode, fsync at checkpoints only; a power failure may lose the last commits.
            case normal
            /// fsync on every commit; a commit that returned is durable.
            case full
            /// Like `full`, and also fsyncs the directory after deleting a rollback journal.
            case extra

            var pragmaValue: String {
                switch self {
                case .off: "OFF"
                case .normal: "NORMAL"
                case .full: "FULL"
                case .extra: "EXTRA"
                }
            }
        }

        /// `PRAGMA synchronous`; `.full` so that a committed write survives power loss.
        public var synchronous: Synchronous = .full
        /// How long a statement waits for another process's lock before failing with `.busy`.
        public var busyTimeout: Duration = .seconds(5)
        /// Open read-only: every write fails with `.readOnly`, and the file must exist.
        public var readOnly = false
        /// Switch a writable database to WAL journal mode (readers never block the writer).
        public var walMode = true

        /// Options with the defaults above.
        public init() {}
    }
}

/// How `SQLiteConnection.transaction` begins its transaction.
public enum TransactionMode: Sendable {
    /// `BEGIN DEFERRED`: locks are taken by the first read or write.
    case deferred
    /// `BEGIN IMMEDIATE`: takes the write lock at once, so the transaction cannot fail later with `.busy`.
    case immediate
    /// `BEGIN EXCLUSIVE`.
    case exclusive

    var sql: String {
        switch self {
        case .deferred: "BEGIN DEFERRED"
        case .immediate: "BEGIN IMMEDIATE"
        case .exclusive: "BEGIN EXCLUSIVE"
        }
    }
}

/// One SQLite connection, with a cache of prepared statements.
///
/// Not thread-safe: use it from one thread at a time (it is opened with `SQLITE_OPEN_NOMUTEX`). Parameters are
/// always bound, never interpolated into SQL.
public final class SQLiteConnection {
    private var handle: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]
    private var savepointDepth = 0
    /// Registered by `afterCommit`, in order; run when the open transaction commits, dropped when it rolls back.
    private var commitActions: [() -> Void] = []
    private static let statementCacheLimit = 128

    /// The path the connection was opened with.
    public let path: String

    /// How many times SQL was compiled on this connection: statement-cache misses plus scripts run by `execute`.
    ///
    /// Once every statement a workload uses is cached this stays constant; a count that grows per request means a
    /// statement is parsed again each time (cache thrashing, or SQL built per call).
    public private(set) var compileCount = 0

    /// Opens (creating it when writable) the database at `path` and applies `options` and
    /// `PRAGMA foreign_keys=ON`.
    ///
    /// Throws `DatabaseError` with code `.cantOpen` naming the path when the file cannot be opened, e.g. because its
    /// directory does not exist.
    public init(path: String, options: Options = .init()) throws {
        self.path = path
        var flags = SQLITE_OPEN_NOMUTEX
        flags |= options.readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        if !options.readOnly { Self.createOwnerOnly(path) }
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            let code = db.map { sqlite3_extended_errcode($0) } ?? rc
            sqlite3_close_v2(db)
            throw DatabaseError(resultCode: code, message: Self.openFailureMessage(path: path, sqliteMessage: message))
        }
        handle = db
        sqlite3_extended_result_codes(db, 1)

        let components = options.busyTimeout.components
        let milliseconds = components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
        sqlite3_busy_timeout(db, Int32(clamping: milliseconds))

        do {
            if options.walMode && !options.readOnly {
                _ = try queryFirst("PRAGMA journal_mode=WAL")
            }
            try execute("PRAGMA synchronous=\(options.synchronous.pragmaValue)")
            try execute("PRAGMA foreign_keys=ON")
        } catch {
            close()
            throw error
        }
    }

    deinit {
        close()
    }

    /// Creates the file at `path`, readable and writable by its owner only, when it does not exist: SQLite would
    /// create it 0644 (less the umask), and its `-wal` and `-shm` files take the database file's mode. The users' names
    /// and emails are nobody else's to read. An existing file keeps its mode; a path that cannot be created is left
    /// for `sqlite3_open_v2` to report.
    private static func createOwnerOnly(_ path: String) {
        guard !path.isEmpty, path != ":memory:", !path.hasPrefix("file:") else { return }
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if descriptor >= 0 { _ = closeDescriptor(descriptor) }
    }

    /// Finalizes all cached statements and closes the database; later calls fail with `.closed`. Idempotent.
    public func close() {
        for statement in statements.values {
            sqlite3_finalize(statement)
        }
        statements.removeAll()
        if let handle {
            sqlite3_close_v2(handle)
        }
        handle = nil
    }

    /// The rowid of the most recent successful INSERT on this connection.
    public var lastInsertRowID: Int64 {
        handle.map { sqlite3_last_insert_rowid($0) } ?? 0
    }

    /// Runs a script of zero or more `;`-separated statements without parameters (e.g. schema DDL).
    public func execute(_ sql: String) throws {
        let db = try openHandle()
        compileCount += 1
        var errorMessage: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &errorMessage)
        if rc != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(db))
            sqlite3_free(errorMessage)
            throw DatabaseError(resultCode: sqlite3_extended_errcode(db), message: message, sql: sql)
        }
    }

    /// Runs one statement with bound parameters and returns the number of rows it changed.
    @discardableResult
    public func run(_ sql: String, _ parameters: any SQLiteBindable...) throws -> Int {
        try run(sql, parameters.map(\.sqliteValue))
    }

    /// Runs one statement with bound parameters and returns the number of rows it changed.
    @discardableResult
    public func run(_ sql: String, _ parameters: [SQLiteValue]) throws -> Int {
        try withStatement(sql, parameters) { db, statement in
            while try step(statement, db: db, sql: sql) {}
            return Int(sqlite3_changes(db))
        }
    }

    /// Runs one query with bound parameters and returns all its rows.
    public func query(_ sql: String, _ parameters: any SQLiteBindable...) throws -> [Row] {
        try query(sql, parameters.map(\.sqliteValue))
    }

    /// Runs one query with bound parameters and returns all its rows.
    public func query(_ sql: String, _ parameters: [SQLiteValue]) throws -> [Row] {
        try withStatement(sql, parameters) { db, statement in
            let columns = Self.columnNames(statement)
            var rows: [Row] = []
            while try step(statement, db: db, sql: sql) {
                rows.append(Row(columns: columns, values: Self.values(statement, count: columns.count)))
            }
            return rows
        }
    }

    /// Runs one query with bound parameters and returns its first row, or nil when there is none.
    public func queryFirst(_ sql: String, _ parameters: any SQLiteBindable...) throws -> Row? {
        try queryFirst(sql, parameters.map(\.sqliteValue))
    }

    /// Runs one query with bound parameters and returns its first row, or nil when there is none.
    public func queryFirst(_ sql: String, _ parameters: [SQLiteValue]) throws -> Row? {
        try withStatement(sql, parameters) { db, statement in
            guard try step(statement, db: db, sql: sql) else { return nil }
            let columns = Self.columnNames(statement)
            return Row(columns: columns, values: Self.values(statement, count: columns.count))
        }
    }

    /// Runs `body` in a transaction: commits when it returns, rolls back when it (or the commit) throws.
    ///
    /// When a transaction is already open (for example inside `DatabaseWriter.write`), runs `body` in a savepoint
    /// instead, so nested calls compose.
    @discardableResult
    public func transaction<T>(_ mode: TransactionMode = .immediate, _ body: () throws -> T) throws -> T {
        if try !isAutocommit() {
            return try savepoint(body)
        }
        try runControl(mode.sql)
        do {
            let result = try body()
            try runControl("COMMIT")
            runCommitActions()
            return result
        } catch {
            discardCommitActions()
            if try !isAutocommit() {
                try? runControl("ROLLBACK")
            }
            throw error
        }
    }

    /// Runs `body` in a savepoint: released when it returns, rolled back (alone) when it throws. Nests freely.
    @discardableResult
    public func savepoint<T>(_ body: () throws -> T) throws -> T {
        savepointDepth += 1
        defer { savepointDepth -= 1 }
        let name = "storage_sp\(savepointDepth)"
        let actionsBefore = commitActions.count
        try runControl("SAVEPOINT \(name)")
        do {
            let result = try body()
            try runControl("RELEASE \(name)")
            return result
        } catch {
            // The savepoint's own commit actions go with its changes.
            commitActions.removeSubrange(min(actionsBefore, commitActions.count)...)
            // If SQLite already rolled the whole transaction back (e.g. SQLITE_FULL), there is nothing to undo.
            if try !isAutocommit() {
                try? runControl("ROLLBACK TO \(name)")
                try? runControl("RELEASE \(name)")
            }
            throw error
        }
    }

    /// Runs `action` on this connection's thread once the transaction open now has committed, e.g. to wake a
    /// reader of the rows it wrote. When no transaction is open, runs it at once.
    ///
    /// The action is dropped, never run, when its changes are undone: when the savepoint or transaction it was
    /// registered in rolls back, or when a commit fails. Commits made by `transaction` and by `DatabaseWriter`'s
    /// group transactions run their actions in registration order after `COMMIT` returned.
    public func afterCommit(_ action: @escaping () -> Void) {
        if (try? isAutocommit()) ?? true {
            action()
        } else {
            commitActions.append(action)
        }
    }

    /// Brings the schema up to date: migration `i` (0-based), a list of SQL texts run in order (each may hold several
    /// statements), runs when `PRAGMA user_version` <= `i`, in its own transaction together with setting
    /// `user_version = i + 1`. The same shape as PostgreSQL's migrations (`PostgresPool`).
    ///
    /// Re-running is a no-op; a failing migration is rolled back and leaves `user_version` unchanged.
    public func migrate(_ migrations: [[String]]) throws {
        var version = try userVersion()
        while version < migrations.count {
            let index = version
            try transaction(.immediate) {
                // Re-read under the write lock: another process may have migrated meanwhile.
                guard try userVersion() == index else { return }
                for sql in migrations[index] { try execute(sql) }
                try execute("PRAGMA user_version = \(index + 1)")
            }
            version = try userVersion()
            if version <= index {
                throw DatabaseError.misuse("migration \(index) did not advance user_version")
            }
        }
    }

    // MARK: Internal

    /// `PRAGMA user_version`.
    func userVersion() throws -> Int {
        try queryFirst("PRAGMA user_version")?[0].intValue ?? 0
    }

    /// True when no transaction is open.
    func isAutocommit() throws -> Bool {
        sqlite3_get_autocommit(try openHandle()) != 0
    }

    /// Runs a transaction-control statement (BEGIN, COMMIT, SAVEPOINT, ...) through the statement cache.
    func runControl(_ sql: String) throws {
        try run(sql, [])
    }

    /// Runs and forgets the actions registered with `afterCommit`: call right after a successful `COMMIT`.
    func runCommitActions() {
        let actions = commitActions
        commitActions.removeAll()
        for action in actions { action() }
    }

    /// Forgets the actions registered with `afterCommit`: call when the transaction rolled back or failed to commit.
    func discardCommitActions() {
        commitActions.removeAll()
    }

    // MARK: Private

    private func openHandle() throws -> OpaquePointer {
        guard let handle else { throw DatabaseError.closed("connection to '\(path)' is closed") }
        return handle
    }

    private func error(_ db: OpaquePointer, sql: String?) -> DatabaseError {
        DatabaseError(resultCode: sqlite3_extended_errcode(db), message: String(cString: sqlite3_errmsg(db)), sql: sql)
    }

    /// Fetches (or prepares and caches) the statement for `sql`, binds `parameters`, runs `body`, then resets the
    /// statement and clears its bindings.
    private func withStatement<T>(
        _ sql: String, _ parameters: [SQLiteValue], _ body: (OpaquePointer, OpaquePointer) throws -> T
    ) throws -> T {
        let db = try openHandle()
        let statement = try cachedStatement(sql, db: db)
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        try bind(parameters, to: statement, db: db, sql: sql)
        return try body(db, statement)
    }

    private func cachedStatement(_ sql: String, db: OpaquePointer) throws -> OpaquePointer {
        if let statement = statements[sql] {
            return statement
        }
        compileCount += 1
        var statement: OpaquePointer?
        var trailing = ""
        let rc = sql.withCString { start in
            var tail: UnsafePointer<CChar>?
            let rc = sqlite3_prepare_v2(db, start, -1, &statement, &tail)
            if let tail { trailing = String(cString: tail) }
            return rc
        }
        guard rc == SQLITE_OK else { throw error(db, sql: sql) }
        guard let statement else { throw DatabaseError.misuse("SQL contains no statement", sql: sql) }
        guard trailing.allSatisfy({ $0.isWhitespace || $0 == ";" }) else {
            sqlite3_finalize(statement)
            throw DatabaseError.misuse("SQL contains more than one statement; use execute(_:) for scripts", sql: sql)
        }
        if statements.count >= Self.statementCacheLimit {
            for cached in statements.values { sqlite3_finalize(cached) }
            statements.removeAll()
        }
        statements[sql] = statement
        return statement
    }

    private func bind(_ parameters: [SQLiteValue], to statement: OpaquePointer, db: OpaquePointer, sql: String) throws {
        let expected = Int(sqlite3_bind_parameter_count(statement))
        guard expected == parameters.count else {
            throw DatabaseError.misuse("statement has \(expected) parameters, \(parameters.count) given", sql: sql)
        }
        for (offset, value) in parameters.enumerated() {
            let index = Int32(offset + 1)
            let rc: Int32
            switch value {
            case .null:
                rc = sqlite3_bind_null(statement, index)
            case .integer(let int):
                rc = sqlite3_bind_int64(statement, index, int)
            case .real(let double):
                rc = sqlite3_bind_double(statement, index, double)
            case .text(var text):
                rc = text.withUTF8 { utf8 in
                    guard let base = utf8.baseAddress, !utf8.isEmpty else {
                        return sqlite3_bind_text(statement, index, "", 0, csqlite_transient())
                    }
                    return UnsafeRawPointer(base).withMemoryRebound(to: CChar.self, capacity: utf8.count) {
                        sqlite3_bind_text(statement, index, $0, Int32(clamping: utf8.count), csqlite_transient())
                    }
                }
            case .blob(let bytes):
                rc = bytes.withUnsafeBytes { raw in
                    guard let base = raw.baseAddress, !raw.isEmpty else {
                        return sqlite3_bind_zeroblob(statement, index, 0)
                    }
                    return sqlite3_bind_blob(statement, index, base, Int32(clamping: raw.count), csqlite_transient())
                }
            }
            guard rc == SQLITE_OK else { throw error(db, sql: sql) }
        }
    }

    /// Steps once: true when a row is available, false when done.
    private func step(_ statement: OpaquePointer, db: OpaquePointer, sql: String) throws -> Bool {
        switch sqlite3_step(statement) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw error(db, sql: sql)
        }
    }

    private static func columnNames(_ statement: OpaquePointer) -> [String] {
        (0..<sqlite3_column_count(statement)).map { index in
            sqlite3_column_name(statement, index).map { String(cString: $0) } ?? ""
        }
    }

    private static func values(_ statement: OpaquePointer, count: Int) -> [SQLiteValue] {
        (0..<Int32(count)).map { index in
            switch sqlite3_column_type(statement, index) {
            case SQLITE_INTEGER:
                return .integer(sqlite3_column_int64(statement, index))
            case SQLITE_FLOAT:
                return .real(sqlite3_column_double(statement, index))
            case SQLITE_TEXT:
                let text = sqlite3_column_text(statement, index)
                let length = Int(sqlite3_column_bytes(statement, index))
                guard let text else { return .text("") }
                return .text(String(decoding: UnsafeBufferPointer(start: text, count: length), as: UTF8.self))
            case SQLITE_BLOB:
                let bytes = sqlite3_column_blob(statement, index)
                let length = Int(sqlite3_column_bytes(statement, index))
                return .blob(bytes.map { Array(UnsafeRawBufferPointer(start: $0, count: length)) } ?? [])
            default:
                return .null
            }
        }
    }

    private static func openFailureMessage(path: String, sqliteMessage: String) -> String {
        var message = "cannot open database '\(path)': \(sqliteMessage)"
        if !path.isEmpty && path != ":memory:" && !path.hasPrefix("file:") {
            let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
            var isDirectory: ObjCBool = false
            if !FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
                message += " (directory '\(directory)' does not exist)"
            } else if !isDirectory.boolValue {
                message += " ('\(directory)' is not a directory)"
            }
        }
        return message
    }
}

@available(*, unavailable)
extension SQLiteConnection: Sendable {}
