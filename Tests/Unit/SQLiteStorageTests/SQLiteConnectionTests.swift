import Foundation
import SQLiteStorage
import Testing

struct SQLiteConnectionTests {
    @Test func bindsAndReadsEveryValueType() async throws {
        try await withTemporaryDirectory { directory in
            let db = try SQLiteConnection(path: directory.appendingPathComponent("values.sqlite").path)
            try db.execute(
                "CREATE TABLE t(id INTEGER PRIMARY KEY, s TEXT, i INTEGER, r REAL, b BLOB, f INTEGER, n TEXT)")

            let unicode = "héllo wörld 🌍 日本語 \u{0} after-nul"
            let bytes: [UInt8] = [0, 1, 2, 0xFF, 0, 0x7F]
            let missing: String? = nil
            let insert = "INSERT INTO t(s, i, r, b, f, n) VALUES(?, ?, ?, ?, ?, ?)"
            try db.run(insert, unicode, Int64.max, 3.25, bytes, true, missing)
            let firstID = db.lastInsertRowID
            try db.run(
                "INSERT INTO t(s, i, r, b, f, n) VALUES(?, ?, ?, ?, ?, ?)",
                [.text(""), .integer(Int64.min), .real(-0.5), .blob([]), .integer(0), .null])
            #expect(db.lastInsertRowID == firstID + 1)

            let rows = try db.query("SELECT s, i, r, b, f, n FROM t ORDER BY id")
            #expect(rows.count == 2)
            #expect(rows[0].columns == ["s", "i", "r", "b", "f", "n"])
            #expect(rows[0].string("s") == unicode)
            #expect(rows[0].int64("i") == Int64.max)
            #expect(rows[0].double("r") == 3.25)
            #expect(rows[0].blob("b") == bytes)
            #expect(rows[0].bool("f") == true)
            #expect(rows[0]["n"] == .null)
            #expect(rows[0].string("n") == nil)

            #expect(rows[1]["s"] == .text(""))
            #expect(rows[1].int64("i") == Int64.min)
            #expect(rows[1].double("r") == -0.5)
            #expect(rows[1]["b"] == .blob([]))
            #expect(rows[1].bool("f") == false)
            #expect(rows[1][5].isNull)

            // Typed accessors do not convert between storage classes (except integer to double).
            #expect(rows[0].int("s") == nil)
            #expect(rows[0].string("i") == nil)
            #expect(try db.queryFirst("SELECT 7 AS x")?.double("x") == 7)
            #expect(try db.queryFirst("SELECT 7 AS x")?.int("x") == 7)
        }
    }

    @Test func parametersAreBoundNotInterpolated() async throws {
        try await withTemporaryDirectory { directory in
            let db = try SQLiteConnection(path: directory.appendingPathComponent("inject.sqlite").path)
            try db.execute("CREATE TABLE t(s TEXT)")
            let hostile = "x'); DROP TABLE t; --"
            #expect(try db.run("INSERT INTO t(s) VALUES(?)", hostile) == 1)
            #expect(try db.queryFirst("SELECT s FROM t WHERE s = ?", hostile)?.string("s") == hostile)
            #expect(try db.queryFirst("SELECT s FROM t WHERE s = ?", "nope") == nil)
        }
    }

    @Test func runReturnsChangesAndStatementsAreReusable() async throws {
        try await withTemporaryDirectory { directory in
            let db = try SQLiteConnection(path: directory.appendingPathComponent("changes.sqlite").path)
            try db.execute("CREATE TABLE t(v INTEGER); CREATE INDEX t_v ON t(v);")
            for value in 0..<100 {
                try db.run("INSERT INTO t(v) VALUES(?)", value)
            }
            #expect(try db.run("UPDATE t SET v = v + 1 WHERE v < ?", 10) == 10)
            #expect(try db.run("DELETE FROM t WHERE v > ?", 1000) == 0)
            #expect(try db.queryFirst("SELECT count(*) AS c FROM t")?.int("c") == 100)
        }
    }

    @Test func misuseIsReported() async throws {
        try await withTemporaryDirectory { directory in
            let db = try SQLiteConnection(path: directory.appendingPathComponent("misuse.sqlite").path)
            try db.execute("CREATE TABLE t(a, b)")

            let tooFew = databaseError { try db.run("INSERT INTO t VALUES(?, ?)", 1) }
            #expect(tooFew?.code == .misuse)
            let twoStatements = databaseError {
                try db.run("INSERT INTO t VALUES(1, 2); DELETE FROM t")
            }
            #expect(twoStatements?.code == .misuse)
            #expect(try db.queryFirst("SELECT count(*) FROM t")?[0] == .integer(0))

            let syntax = databaseError { try db.query("SELEC 1") }
            #expect(syntax?.code == .other)
            #expect(syntax?.sql == "SELEC 1")

            db.close()
            let closed = databaseError { try db.query("SELECT 1") }
            #expect(closed?.code == .closed)
        }
    }

    @Test func uniqueConstraintViolationIsRecognised() async throws {
        try await withTemporaryDirectory { directory in
            let db = try SQLiteConnection(path: directory.appendingPathComponent("unique.sqlite").path)
            try db.execute("CREATE TABLE users(id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE)")
            try db.run("INSERT INTO users VALUES(?, ?)", "u1", "a@example.com")

            let duplicateEmail = databaseError {
                try db.run("INSERT INTO users VALUES(?, ?)", "u2", "a@example.com")
            }
            #expect(duplicateEmail?.code == .constraint)
            #expect(duplicateEmail?.isUniqueConstraintViolation == true)
            #expect(duplicateEmail?.resultCode == 2067)

            let duplicateKey = databaseError {
                try db.run("INSERT INTO users VALUES(?, ?)", "u1", "b@example.com")
            }
            #expect(duplicateKey?.isUniqueConstraintViolation == true)

            let notNull = databaseError {
                try db.run("INSERT INTO users VALUES(?, ?)", "u3", String?.none)
            }
            #expect(notNull?.code == .constraint)
            #expect(notNull?.isUniqueConstraintViolation == false)
        }
    }

    @Test func pragmasAreInEffect() async throws {
        try await withTemporaryDirectory { directory in
            let db = try SQLiteConnection(path: directory.appendingPathComponent("pragmas.sqlite").path)
            #expect(try db.queryFirst("PRAGMA journal_mode")?[0] == .text("wal"))
            #expect(try db.queryFirst("PRAGMA synchronous")?[0] == .integer(2))  // FULL
            #expect(try db.queryFirst("PRAGMA foreign_keys")?[0] == .integer(1))
            #expect(try db.queryFirst("PRAGMA busy_timeout")?[0] == .integer(5000))

            var options = SQLiteConnection.Options()
            options.synchronous = .normal
            options.walMode = false
            options.busyTimeout = .milliseconds(250)
            let other = try SQLiteConnection(
                path: directory.appendingPathComponent("other.sqlite").path, options: options)
            #expect(try other.queryFirst("PRAGMA journal_mode")?[0] == .text("delete"))
            #expect(try other.queryFirst("PRAGMA synchronous")?[0] == .integer(1))
            #expect(try other.queryFirst("PRAGMA busy_timeout")?[0] == .integer(250))
        }
    }

    @Test func foreignKeysAreEnforced() async throws {
        try await withTemporaryDirectory { directory in
            let db = try SQLiteConnection(path: directory.appendingPathComponent("fk.sqlite").path)
            try db.execute("CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE c(p INTEGER REFERENCES p(id));")
            let error = databaseError { try db.run("INSERT INTO c VALUES(?)", 1) }
            #expect(error?.code == .constraint)
        }
    }

    @Test func openingInAMissingDirectoryFailsClearly() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("no/such/dir/db.sqlite").path
            let error = databaseError { try SQLiteConnection(path: path) }
            #expect(error?.code == .cantOpen)
            #expect(error?.message.contains(path) == true)
            #expect(error?.message.contains("does not exist") == true)
            #expect(!FileManager.default.fileExists(atPath: path))
        }
    }

    @Test func readOnlyConnectionRejectsWrites() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("ro.sqlite").path
            do {
                let db = try SQLiteConnection(path: path)
                try db.execute("CREATE TABLE t(v INTEGER); INSERT INTO t VALUES(1);")
            }
            var options = SQLiteConnection.Options()
            options.readOnly = true
            let db = try SQLiteConnection(path: path, options: options)
            let error = databaseError { try db.run("INSERT INTO t VALUES(?)", 2) }
            #expect(error?.code == .readOnly)
            #expect(try db.queryFirst("SELECT count(*) FROM t")?[0] == .integer(1))

            let missing = databaseError {
                try SQLiteConnection(path: directory.appendingPathComponent("absent.sqlite").path, options: options)
            }
            #expect(missing?.code == .cantOpen)
        }
    }
}

/// The first column of every row of `sql`, as Int.
func ints(_ db: SQLiteConnection, _ sql: String) throws -> [Int?] {
    try db.query(sql).map { $0[0].intValue }
}

struct TransactionTests {
    struct Boom: Error {}

    @Test func transactionCommitsOrRollsBack() async throws {
        try await withTemporaryDirectory { directory in
            let db = try SQLiteConnection(path: directory.appendingPathComponent("tx.sqlite").path)
            try db.execute("CREATE TABLE t(v INTEGER)")

            let value = try db.transaction {
                try db.run("INSERT INTO t VALUES(?)", 1)
                return 42
            }
            #expect(value == 42)

            let boom = thrownError {
                try db.transaction(.deferred) {
                    try db.run("INSERT INTO t VALUES(?)", 2)
                    throw Boom()
                }
            }
            #expect(boom is Boom)
            #expect(try ints(db, "SELECT v FROM t") == [1])

            // A failing statement inside rolls back the earlier ones too.
            try db.execute("CREATE TABLE u(v INTEGER UNIQUE)")
            let duplicate = databaseError {
                try db.transaction(.exclusive) {
                    try db.run("INSERT INTO u VALUES(?)", 1)
                    try db.run("INSERT INTO u VALUES(?)", 1)
                }
            }
            #expect(duplicate?.isUniqueConstraintViolation == true)
            #expect(try ints(db, "SELECT count(*) FROM u") == [0])

            // The connection is usable (no transaction left open) after a rollback.
            try db.transaction { try db.run("INSERT INTO u VALUES(?)", 5) }
            #expect(try ints(db, "SELECT count(*) FROM u") == [1])
        }
    }

    @Test func savepointsNest() async throws {
        try await withTemporaryDirectory { directory in
            let db = try SQLiteConnection(path: directory.appendingPathComponent("sp.sqlite").path)
            try db.execute("CREATE TABLE t(v INTEGER)")

            try db.transaction {
                try db.run("INSERT INTO t VALUES(?)", 1)
                let first = thrownError {
                    try db.savepoint {
                        try db.run("INSERT INTO t VALUES(?)", 2)
                        try db.savepoint { try db.run("INSERT INTO t VALUES(?)", 3) }
                        throw Boom()
                    }
                }
                #expect(first is Boom)
                try db.savepoint {
                    try db.run("INSERT INTO t VALUES(?)", 4)
                    let inner = thrownError {
                        try db.savepoint {
                            try db.run("INSERT INTO t VALUES(?)", 5)
                            throw Boom()
                        }
                    }
                    #expect(inner is Boom)
                }
                // A nested transaction becomes a savepoint.
                let nested = thrownError {
                    try db.transaction {
                        try db.run("INSERT INTO t VALUES(?)", 6)
                        throw Boom()
                    }
                }
                #expect(nested is Boom)
                try db.transaction { try db.run("INSERT INTO t VALUES(?)", 7) }
            }
            #expect(try ints(db, "SELECT v FROM t ORDER BY v") == [1, 4, 7])
        }
    }

    @Test func commitActionsFollowTheTransaction() async throws {
        try await withTemporaryDirectory { directory in
            let db = try SQLiteConnection(path: directory.appendingPathComponent("actions.sqlite").path)
            try db.execute("CREATE TABLE t(v INTEGER)")
            var ran: [String] = []

            db.afterCommit { ran.append("no transaction") }
            #expect(ran == ["no transaction"], "outside a transaction an action runs at once")

            try db.transaction {
                db.afterCommit { ran.append("outer") }
                _ = thrownError {
                    try db.savepoint {
                        db.afterCommit { ran.append("rolled-back savepoint") }
                        throw Boom()
                    }
                }
                try db.savepoint { db.afterCommit { ran.append("released savepoint") } }
                #expect(ran == ["no transaction"], "nothing runs before the commit")
            }
            #expect(ran == ["no transaction", "outer", "released savepoint"])

            _ = thrownError {
                try db.transaction {
                    db.afterCommit { ran.append("rolled-back transaction") }
                    throw Boom()
                }
            }
            try db.transaction { try db.run("INSERT INTO t VALUES(?)", 1) }
            #expect(ran == ["no transaction", "outer", "released savepoint"])
        }
    }

    @Test func migrationsRunOnceInOrder() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("migrate.sqlite").path
            let migrations = [
                ["CREATE TABLE users(id TEXT PRIMARY KEY)"],
                // A migration is a list of texts, each of which may hold several statements.
                ["ALTER TABLE users ADD COLUMN email TEXT;", "CREATE INDEX users_email ON users(email);"],
            ]
            do {
                let db = try SQLiteConnection(path: path)
                try db.migrate(migrations)
                #expect(try ints(db, "PRAGMA user_version") == [2])
                // Re-running would fail (table exists) if anything ran again.
                try db.migrate(migrations)
                try db.run("INSERT INTO users(id, email) VALUES(?, ?)", "u1", "a@example.com")
            }
            let db = try SQLiteConnection(path: path)
            try db.migrate(migrations)
            try db.migrate(migrations + [["ALTER TABLE users ADD COLUMN name TEXT"]])
            #expect(try ints(db, "PRAGMA user_version") == [3])
            let row = try db.queryFirst("SELECT id, email, name FROM users")
            #expect(row?.string("id") == "u1")
            #expect(row?.string("email") == "a@example.com")
            #expect(row?["name"] == .null)
        }
    }

    @Test func failingMigrationLeavesVersionUnchanged() async throws {
        try await withTemporaryDirectory { directory in
            let db = try SQLiteConnection(path: directory.appendingPathComponent("bad.sqlite").path)
            let good = ["CREATE TABLE a(v INTEGER)"]
            let bad = ["CREATE TABLE b(v INTEGER);", "INSERT INTO no_such_table VALUES(1);"]
            let error = databaseError { try db.migrate([good, bad]) }
            #expect(error?.message.contains("no_such_table") == true)
            #expect(try ints(db, "PRAGMA user_version") == [1])
            #expect(try db.query("SELECT name FROM sqlite_master WHERE name = 'b'").isEmpty)
            #expect(try db.query("SELECT name FROM sqlite_master WHERE name = 'a'").count == 1)

            try db.migrate([good, ["CREATE TABLE b(v INTEGER)"]])
            #expect(try ints(db, "PRAGMA user_version") == [2])
        }
    }
}
