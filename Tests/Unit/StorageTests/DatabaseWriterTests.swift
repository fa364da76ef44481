import Foundation
import Logging
@testable import Storage
import Testing
import TestSupport

private let schema = [
    """
    CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER NOT NULL UNIQUE);
    CREATE TABLE parent(id INTEGER PRIMARY KEY);
    CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);
    """
]

private struct Boom: Error {}

private func count(_ db: Connection, _ table: String = "t") throws -> Int {
    try db.queryFirst("SELECT count(*) AS c FROM \(table)")?.int("c") ?? -1
}

private func sortedValues(_ db: Connection) throws -> [Int?] {
    try ints(db, "SELECT v FROM t ORDER BY v")
}

/// Waits until `writer` has `count` jobs queued behind the one holding its thread.
private func waitForQueue(_ writer: DatabaseWriter, count: Int) async -> Bool {
    (try? await eventually("\(count) jobs queued") { writer.pendingJobCount == count }) != nil
}

struct DatabaseWriterTests {
    @Test func concurrentWritesAllLandInFewerCommits() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("group.sqlite").path
            let writer = try DatabaseWriter(path: path, migrations: schema, logger: quietLogger)

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
            let commits = writer.committedTransactions
            #expect(commits >= 1)
            #expect(commits < 500)
            let rows = try await writer.read { try count($0) }
            #expect(rows == 500)
            await writer.close()

            // Durable and visible to a fresh connection.
            #expect(try count(Connection(path: path)) == 500)
        }
    }

    @Test func queuedWritesShareBoundedGroupTransactions() async throws {
        try await withTemporaryDirectory { directory in
            let writer = try DatabaseWriter(
                path: directory.appendingPathComponent("batches.sqlite").path, migrations: schema, logger: quietLogger)
            let gate = Gate()
            let held = Task { try await writer.write { _ in gate.hold() } }
            await gate.waitUntilHeld()

            try await withThrowingTaskGroup(of: Void.self) { group in
                for value in 0..<500 {
                    group.addTask { _ = try await writer.write { try $0.run("INSERT INTO t(v) VALUES(?)", value) } }
                }
                let queued = await waitForQueue(writer, count: 500)
                #expect(queued)
                gate.open()
                try await group.waitForAll()
            }
            try await held.value
            // The gate's own transaction, then 500 queued jobs in groups of at most 256.
            #expect(writer.committedTransactions == 3)
            let rows = try await writer.read { try count($0) }
            #expect(rows == 500)
            await writer.close()
        }
    }

    @Test func failingJobDoesNotAffectOthersInItsGroup() async throws {
        try await withTemporaryDirectory { directory in
            let writer = try DatabaseWriter(
                path: directory.appendingPathComponent("partial.sqlite").path, migrations: schema, logger: quietLogger)
            try await writer.write { try $0.run("INSERT INTO t(v) VALUES(?)", -1) }
            let gate = Gate()
            let held = Task { try await writer.write { _ in gate.hold() } }
            await gate.waitUntilHeld()

            let errors = await withTaskGroup(of: (Int, (any Error)?).self) { group in
                for job in 0..<20 {
                    group.addTask {
                        let error = await thrownError {
                            try await writer.write { db in
                                try db.run("INSERT INTO t(v) VALUES(?)", job)
                                if job == 5 { throw Boom() }  // its insert must be undone
                                if job == 6 { try db.run("INSERT INTO t(v) VALUES(?)", -1) }  // unique violation
                            }
                        }
                        return (job, error)
                    }
                }
                let queued = await waitForQueue(writer, count: 20)
                #expect(queued)
                gate.open()
                return await group.reduce(into: [Int: (any Error)?]()) { $0[$1.0] = $1.1 }
            }
            try await held.value

            #expect(errors.count == 20)
            for job in 0..<20 {
                let error = errors[job] ?? nil
                switch job {
                case 5: #expect(error is Boom)
                case 6: #expect((error as? DatabaseError)?.isUniqueConstraintViolation == true)
                default: #expect(error == nil, "job \(job)")
                }
            }
            #expect(writer.committedTransactions == 3)  // the first insert, the gate, one group
            let values = try await writer.read { try sortedValues($0) }
            let expected = [-1] + (0..<20).filter { $0 != 5 && $0 != 6 }
            #expect(values == expected)
            await writer.close()
        }
    }

    @Test func failedCommitFailsTheWholeGroup() async throws {
        try await withTemporaryDirectory { directory in
            let writer = try DatabaseWriter(
                path: directory.appendingPathComponent("commitfail.sqlite").path, migrations: schema,
                logger: quietLogger)
            let gate = Gate()
            let held = Task { try await writer.write { _ in gate.hold() } }
            await gate.waitUntilHeld()

            // The deferred foreign key is only checked at COMMIT, so the group's single commit fails.
            let good = Task { try await writer.write { try $0.run("INSERT INTO t(v) VALUES(?)", 1) } }
            let firstQueued = await waitForQueue(writer, count: 1)
            let orphan = Task { try await writer.write { try $0.run("INSERT INTO child(parent_id) VALUES(?)", 42) } }
            let bothQueued = await waitForQueue(writer, count: 2)
            #expect(firstQueued && bothQueued)
            gate.open()
            try await held.value

            let goodError = await databaseError { try await good.value }
            let orphanError = await databaseError { try await orphan.value }
            #expect(goodError?.code == .constraint)
            #expect(orphanError?.code == .constraint)
            #expect(goodError?.sql == "COMMIT")
            #expect(writer.committedTransactions == 1)

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
            var options = ConnectionOptions()
            options.readOnly = true
            let writer = try DatabaseWriter(path: path, options: options, migrations: schema, logger: quietLogger)
            let error = await databaseError {
                try await writer.write { db in
                    try db.run("INSERT INTO t(v) VALUES(?)", 2)
                    try db.run("INSERT INTO t(v) VALUES(?)", 3)
                }
            }
            #expect(error?.code == .readOnly)
            #expect(writer.committedTransactions == 0)
            let values = try await writer.read { try sortedValues($0) }
            #expect(values == [1])
            await writer.close()
            #expect(try sortedValues(Connection(path: path)) == [1])
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

    @Test func closeFinishesQueuedJobsThenRejectsNewOnes() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("close.sqlite").path
            let writer = try DatabaseWriter(path: path, migrations: schema, logger: quietLogger)
            let gate = Gate()
            let held = Task { try await writer.write { _ in gate.hold() } }
            await gate.waitUntilHeld()

            try await withThrowingTaskGroup(of: Void.self) { group in
                for value in 0..<10 {
                    group.addTask { _ = try await writer.write { try $0.run("INSERT INTO t(v) VALUES(?)", value) } }
                }
                let queued = await waitForQueue(writer, count: 10)
                #expect(queued)
                group.addTask { await writer.close() }
                gate.open()
                try await group.waitForAll()
            }
            try await held.value
            await writer.close()  // idempotent

            let error = await databaseError { try await writer.write { _ in 1 } }
            #expect(error?.code == .closed)
            #expect(try count(Connection(path: path)) == 10)
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
                try DatabaseWriter(path: path, migrations: ["CREATE TABLE a(x)", "NOT SQL"], logger: quietLogger)
            }
            #expect(migrationError?.sql == "NOT SQL")
            let version = try ints(Connection(path: path), "PRAGMA user_version")
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
