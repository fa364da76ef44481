import Foundation
import Logging
import Metrics
import MetricsTestKit
import SQLiteStorage
import Synchronization
import Testing

private let schema = [
    [
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER NOT NULL UNIQUE);",
        "CREATE TABLE parent(id INTEGER PRIMARY KEY);",
        "CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);",
    ]
]

private struct Boom: Error {}

private func count(_ db: SQLiteConnection, _ table: String = "t") throws -> Int {
    try db.queryFirst("SELECT count(*) AS c FROM \(table)")?.int("c") ?? -1
}

private func sortedValues(_ db: SQLiteConnection) throws -> [Int?] {
    try ints(db, "SELECT v FROM t ORDER BY v")
}

/// A writer whose group transactions a test can count through the writer's own metric: every group transaction
/// records `sqlite_transaction_duration_seconds` once when it ends, committed or rolled back.
private struct CountedWriter: Sendable {
    let writer: DatabaseWriter
    private let metrics = TestMetrics()

    init(path: String, options: SQLiteConnection.Options = .init(), migrations: [[String]] = schema) throws {
        writer = try withMetricsFactory(metrics) {
            try DatabaseWriter(path: path, options: options, migrations: migrations, logger: quietLogger)
        }
    }

    /// Group transactions ended so far, as seen on the writer thread. Read inside a write body, it is the index of
    /// the group transaction that body runs in.
    var transactions: Int {
        (try? metrics.expectTimer("sqlite_transaction_duration_seconds").values.count) ?? 0
    }

    /// Group transactions ended before this call, read on the writer thread: a group resumes its callers before it
    /// records its duration, so a caller that just resumed may not see its own group counted yet.
    func transactionsSoFar() async throws -> Int {
        try await writer.read { _ in transactions }
    }
}

/// Queues one write per value, in order, before returning: `Task.immediate` runs each task on the calling thread
/// up to its first suspension, which is after `write` queued its job. Each task returns the index of the group
/// transaction its body ran in, and its row's value.
@available(macOS 26, *)
private func queueWrites(
    _ counted: CountedWriter, _ values: some Sequence<Int>,
    _ body: @escaping @Sendable (SQLiteConnection, Int) throws -> Void = { db, value in
        try db.run("INSERT INTO t(v) VALUES(?)", value)
    }
) -> [Task<Int, any Error>] {
    values.map { value in
        Task.immediate {
            try await counted.writer.write { db in
                let group = counted.transactions
                try body(db, value)
                return group
            }
        }
    }
}

/// Awaits each task; the error of those that failed.
private func outcomes(_ tasks: [Task<Int, any Error>]) async -> [Result<Int, any Error>] {
    var results: [Result<Int, any Error>] = []
    for task in tasks { results.append(await task.result) }
    return results
}

struct DatabaseWriterTests {
    @Test func concurrentWritesAllLandInFewerTransactions() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("group.sqlite").path
            let counted = try CountedWriter(path: path)
            let writer = counted.writer

            let ids = try await withThrowingTaskGroup(of: Int64.self) { group in
                for value in 0..<500 {
                    group.addTask {
                        try await writer.write { db in
                            try db.run("INSERT INTO t(v) VALUES(?)", value)
                            return db.lastInsertRowID
                        }
                    }
                }
                return try await group.reduce(into: Set<Int64>()) { $0.insert($1) }
            }
            #expect(ids.count == 500)
            let transactions = try await counted.transactionsSoFar()
            #expect(transactions >= 1)
            #expect(transactions < 500)
            let rows = try await writer.read { try count($0) }
            #expect(rows == 500)
            await writer.close()

            // Durable and visible to a fresh connection.
            #expect(try count(SQLiteConnection(path: path)) == 500)
        }
    }

    @available(macOS 26, *)
    @Test func queuedWritesShareBoundedGroupTransactions() async throws {
        try await withTemporaryDirectory { directory in
            let counted = try CountedWriter(path: directory.appendingPathComponent("batches.sqlite").path)
            let gate = Gate()
            let held = Task { try await counted.writer.write { _ in gate.hold() } }
            await gate.waitUntilHeld()

            let writes = queueWrites(counted, 0..<500)
            gate.open()
            let groups = try await outcomes(writes).map { try $0.get() }
            try await held.value
            // The gate's own transaction (0), then the 500 queued jobs in groups of at most 256, in queue order.
            let sizes = groups.reduce(into: [Int: Int]()) { $0[$1, default: 0] += 1 }
            #expect(sizes == [1: 256, 2: 244])
            #expect(groups == groups.sorted())
            #expect(try await counted.transactionsSoFar() == 3)
            let rows = try await counted.writer.read { try count($0) }
            #expect(rows == 500)
            await counted.writer.close()
        }
    }

    @available(macOS 26, *)
    @Test func failingJobDoesNotAffectOthersInItsGroup() async throws {
        try await withTemporaryDirectory { directory in
            let counted = try CountedWriter(path: directory.appendingPathComponent("partial.sqlite").path)
            let writer = counted.writer
            try await writer.write { try $0.run("INSERT INTO t(v) VALUES(?)", -1) }
            let gate = Gate()
            let held = Task { try await writer.write { _ in gate.hold() } }
            await gate.waitUntilHeld()

            let writes = queueWrites(counted, 0..<20) { db, job in
                try db.run("INSERT INTO t(v) VALUES(?)", job)
                if job == 5 { throw Boom() }  // its insert must be undone
                if job == 6 { try db.run("INSERT INTO t(v) VALUES(?)", -1) }  // unique violation
            }
            gate.open()
            let results = await outcomes(writes)
            try await held.value

            for (job, result) in results.enumerated() {
                switch (job, result) {
                case (5, .failure(let error)): #expect(error is Boom)
                case (6, .failure(let error)):
                    #expect((error as? DatabaseError)?.isUniqueConstraintViolation == true)
                case (_, .success(let group)): #expect(group == 2, "job \(job) ran in the one group after the gate")
                case (_, .failure(let error)): Issue.record("job \(job) failed: \(error)")
                }
            }
            #expect(try await counted.transactionsSoFar() == 3)  // the first insert, the gate, one group
            let values = try await writer.read { try sortedValues($0) }
            let expected = [-1] + (0..<20).filter { $0 != 5 && $0 != 6 }
            #expect(values == expected)
            await writer.close()
        }
    }

    @available(macOS 26, *)
    @Test func failedCommitFailsTheWholeGroup() async throws {
        try await withTemporaryDirectory { directory in
            let counted = try CountedWriter(path: directory.appendingPathComponent("commitfail.sqlite").path)
            let writer = counted.writer
            let gate = Gate()
            let held = Task { try await writer.write { _ in gate.hold() } }
            await gate.waitUntilHeld()

            // The deferred foreign key is only checked at COMMIT, so the group's single commit fails.
            let ran = Mutex(0)
            let writes = queueWrites(counted, [1, 42]) { db, value in
                db.afterCommit { ran.withLock { $0 += 1 } }
                if value == 42 {
                    try db.run("INSERT INTO child(parent_id) VALUES(?)", value)
                } else {
                    try db.run("INSERT INTO t(v) VALUES(?)", value)
                }
            }
            gate.open()
            try await held.value

            let errors = await outcomes(writes).map { result -> DatabaseError? in
                guard case .failure(let error) = result else { return nil }
                return error as? DatabaseError
            }
            #expect(errors.map { $0?.code } == [.constraint, .constraint])
            #expect(errors.map { $0?.sql } == ["COMMIT", "COMMIT"])
            #expect(try await counted.transactionsSoFar() == 2)  // the gate's, and the group's that was rolled back
            #expect(ran.withLock { $0 } == 0, "a failed commit runs no commit action")

            // Nothing of the failed group is stored, and the writer goes on working.
            let stored = try await writer.read { try count($0) + count($0, "child") }
            #expect(stored == 0)
            try await writer.write { try $0.run("INSERT INTO t(v) VALUES(?)", 2) }
            let after = try await writer.read { try sortedValues($0) }
            #expect(after == [2])
            await writer.close()
        }
    }

    @Test func writesToAReadOnlyDatabaseFailWithoutPartialData() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("readonly.sqlite").path
            let setup = try DatabaseWriter(path: path, migrations: schema, logger: quietLogger)
            try await setup.write { try $0.run("INSERT INTO t(v) VALUES(?)", 1) }
            await setup.close()

            // chmod 0444 does not stop root (these tests may run as root), so open the file read-only instead.
            var options = SQLiteConnection.Options()
            options.readOnly = true
            let writer = try DatabaseWriter(path: path, options: options, migrations: schema, logger: quietLogger)
            let error = await databaseError {
                try await writer.write { db in
                    try db.run("INSERT INTO t(v) VALUES(?)", 2)
                    try db.run("INSERT INTO t(v) VALUES(?)", 3)
                }
            }
            #expect(error?.code == .readOnly)
            let values = try await writer.read { try sortedValues($0) }
            #expect(values == [1])
            await writer.close()
            #expect(try sortedValues(SQLiteConnection(path: path)) == [1])
        }
    }

    @Test func readsSeeWritesAndCannotWrite() async throws {
        try await withTemporaryDirectory { directory in
            let writer = try DatabaseWriter(
                path: directory.appendingPathComponent("read.sqlite").path, migrations: schema, logger: quietLogger)
            try await writer.write { try $0.run("INSERT INTO t(v) VALUES(?)", 7) }
            let seen = try await writer.read { try sortedValues($0) }
            #expect(seen == [7])
            let error = await databaseError { try await writer.read { try $0.run("INSERT INTO t(v) VALUES(?)", 8) } }
            #expect(error?.code == .readOnly)
            // Writes still work after a read.
            try await writer.write { try $0.run("INSERT INTO t(v) VALUES(?)", 9) }
            let after = try await writer.read { try sortedValues($0) }
            #expect(after == [7, 9])
            await writer.close()
        }
    }

    @available(macOS 26, *)
    @Test func closeFinishesQueuedJobsThenRejectsNewOnes() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("close.sqlite").path
            let counted = try CountedWriter(path: path)
            let writer = counted.writer
            let gate = Gate()
            let held = Task { try await writer.write { _ in gate.hold() } }
            await gate.waitUntilHeld()

            let writes = queueWrites(counted, 0..<10)
            let closed = Task.immediate { await writer.close() }
            gate.open()
            let results = await outcomes(writes)
            await closed.value
            try await held.value
            await writer.close()  // idempotent

            #expect(results.allSatisfy { (try? $0.get()) != nil })
            let error = await databaseError { try await writer.write { _ in 1 } }
            #expect(error?.code == .closed)
            #expect(try count(SQLiteConnection(path: path)) == 10)
        }
    }

    @Test func badConfigurationFailsAtInit() async throws {
        try await withTemporaryDirectory { directory in
            let missing = directory.appendingPathComponent("missing/db.sqlite").path
            let openError = databaseError { try DatabaseWriter(path: missing, logger: quietLogger) }
            #expect(openError?.code == .cantOpen)
            #expect(openError?.message.contains(missing) == true)

            let path = directory.appendingPathComponent("badmigration.sqlite").path
            let migrationError = databaseError {
                try DatabaseWriter(path: path, migrations: [["CREATE TABLE a(x)"], ["NOT SQL"]], logger: quietLogger)
            }
            #expect(migrationError?.sql == "NOT SQL")
            let version = try ints(SQLiteConnection(path: path), "PRAGMA user_version")
            #expect(version == [1])
        }
    }

    @Test func nestedTransactionsInsideAWriteAreSavepoints() async throws {
        try await withTemporaryDirectory { directory in
            let writer = try DatabaseWriter(
                path: directory.appendingPathComponent("nested.sqlite").path, migrations: schema, logger: quietLogger)
            try await writer.write { db in
                try db.transaction { try db.run("INSERT INTO t(v) VALUES(?)", 1) }
                _ = try? db.transaction {
                    try db.run("INSERT INTO t(v) VALUES(?)", 2)
                    throw Boom()
                }
            }
            let values = try await writer.read { try sortedValues($0) }
            #expect(values == [1])
            await writer.close()
        }
    }

    @available(macOS 26, *)
    @Test func commitActionsRunOnlyForJobsThatCommitted() async throws {
        try await withTemporaryDirectory { directory in
            let counted = try CountedWriter(path: directory.appendingPathComponent("actions.sqlite").path)
            let writer = counted.writer
            let ran = Mutex<[String]>([])
            let gate = Gate()
            let held = Task { try await writer.write { _ in gate.hold() } }
            await gate.waitUntilHeld()

            // One group: a job that commits, one that throws, one whose nested savepoint fails, one read.
            let writes = queueWrites(counted, 0..<3) { db, job in
                try db.run("INSERT INTO t(v) VALUES(?)", job)
                db.afterCommit { ran.withLock { $0.append("job \(job)") } }
                if job == 1 { throw Boom() }
                if job == 2 {
                    _ = try? db.savepoint {
                        db.afterCommit { ran.withLock { $0.append("inner savepoint") } }
                        throw Boom()
                    }
                }
            }
            let read = Task.immediate {
                try await writer.read { db in db.afterCommit { ran.withLock { $0.append("read") } } }
            }
            gate.open()
            let results = await outcomes(writes)
            try await read.value
            try await held.value
            #expect(results.map { (try? $0.get()) != nil } == [true, false, true])
            // Actions run after the commit and before the callers resumed, once each, in registration order.
            #expect(ran.withLock { $0 } == ["job 0", "job 2"])
            await writer.close()
        }
    }
}

struct DatabaseReaderTests {
    @Test func readerSeesCommittedWrites() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("reader.sqlite").path
            let writer = try DatabaseWriter(path: path, migrations: schema, logger: quietLogger)
            let reader = try DatabaseReader(path: path)
            let before = try await reader.read { try count($0) }
            #expect(before == 0)
            try await writer.write { try $0.run("INSERT INTO t(v) VALUES(?)", 1) }
            let after = try await reader.read { try count($0) }
            #expect(after == 1)

            let error = await databaseError { try await reader.read { try $0.run("INSERT INTO t(v) VALUES(?)", 2) } }
            #expect(error?.code == .readOnly)
            await reader.close()
            let closed = await databaseError { try await reader.read { _ in 0 } }
            #expect(closed?.code == .closed)
            await writer.close()
        }
    }
}
