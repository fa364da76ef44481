import Foundation
import SQLiteStorage
import Testing

/// Once a workload's statements are cached, running it again compiles no SQL: no `sqlite3Parser` on the hot path.
struct StatementCompilationTests {
    private static let schema = [["CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER NOT NULL);"]]

    /// Writes (group transactions with savepoints), reads on the writer and reads on a reader, repeated: the
    /// compile counts of both connections stay where the first round left them.
    @Test func repeatedWritesAndReadsCompileNothing() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("db.sqlite").path
            let writer = try DatabaseWriter(path: path, migrations: Self.schema, logger: quietLogger)
            let reader = try DatabaseReader(path: path)
            func round(_ value: Int) async throws {
                try await writer.write { db in
                    try db.run("INSERT INTO t(v) VALUES(?)", value)
                    try db.transaction { try db.run("UPDATE t SET v = v + 1 WHERE id = ?", db.lastInsertRowID) }
                }
                _ = try await writer.read { db in try db.queryFirst("SELECT count(*) FROM t") }
                _ = try await reader.read { db in try db.query("SELECT v FROM t WHERE v > ? LIMIT 5", value) }
            }
            try await round(0)
            let writerBefore = try await writer.read { $0.compileCount }
            let readerBefore = try await reader.read { $0.compileCount }
            for value in 1...20 { try await round(value) }
            let writerAfter = try await writer.read { $0.compileCount }
            let readerAfter = try await reader.read { $0.compileCount }
            #expect(writerAfter == writerBefore)
            #expect(readerAfter == readerBefore)
            await reader.close()
            await writer.close()
        }
    }

    /// The count is real: a statement the cache has not seen is compiled, one it has is not.
    @Test func countsCacheMissesOnly() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("db.sqlite").path
            let writer = try DatabaseWriter(path: path, migrations: Self.schema, logger: quietLogger)
            let counts = try await writer.write { db in
                let start = db.compileCount
                _ = try db.queryFirst("SELECT 1 + ?", 1)
                let afterFirst = db.compileCount
                _ = try db.queryFirst("SELECT 1 + ?", 2)
                return (afterFirst - start, db.compileCount - afterFirst)
            }
            #expect(counts.0 == 1)
            #expect(counts.1 == 0)
            await writer.close()
        }
    }
}
