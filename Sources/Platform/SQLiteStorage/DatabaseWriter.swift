public import Logging
import Metrics

/// The one writer connection of a service, owned by a dedicated thread, with group commit.
///
/// Writes queued at the same moment (up to 256) share one transaction: each job runs in its own savepoint, then one
/// `COMMIT` (one fsync with `synchronous=FULL`) makes them all durable before any caller is resumed.
///
/// Each group transaction's time from `BEGIN` to its `COMMIT` (or rollback) is recorded in the swift-metrics timer
/// `sqlite_transaction_duration_seconds`, made with the metrics factory current when the writer is created.
public final class DatabaseWriter: Sendable {
    /// Most jobs one group transaction takes.
    static let maxBatch = 256

    private let thread: DatabaseThread
    private let committer: GroupCommitter

    /// Opens the database at `path`, applies `migrations` (see `SQLiteConnection.migrate`) and starts the writer
    /// thread.
    ///
    /// Blocks until the database is open and migrated, so a bad path or a failing migration throws here.
    public init(
        path: String, options: SQLiteConnection.Options = .init(), migrations: [[String]] = [], logger: Logger
    ) throws {
        var logger = logger
        logger[metadataKey: "db"] = "\(path)"
        let thread = DatabaseThread(maxBatch: Self.maxBatch, closedMessage: "database writer for '\(path)' is closed")
        let committer = GroupCommitter(logger: logger)
        try thread.start(
            name: "db-writer",
            open: { [logger] in
                let connection = try SQLiteConnection(path: path, options: options)
                let before = try connection.userVersion()
                try connection.migrate(migrations)
                let after = try connection.userVersion()
                if after > migrations.count {
                    logger.warning(
                        "database schema is newer than this build knows",
                        metadata: ["user_version": "\(after)", "migrations": "\(migrations.count)"])
                }
                logger.info("database open", metadata: ["user_version": "\(after)", "migrated_from": "\(before)"])
                return connection
            },
            process: { connection, jobs in committer.process(jobs, on: connection) })
        self.thread = thread
        self.committer = committer
    }

    deinit {
        thread.beginClose()
    }

    /// Runs `body` in the next group transaction and returns its result once that transaction is committed.
    ///
    /// If `body` throws, only its own changes are rolled back and the error is rethrown here. If the commit fails,
    /// every job of the group gets the commit's error and nothing of the group is stored. `body` runs on the writer
    /// thread and must not begin, commit or roll back the transaction itself (nested `SQLiteConnection.transaction`
    /// calls become savepoints). Actions it registers with `SQLiteConnection.afterCommit` run on the writer thread
    /// after the group committed and before any caller of the group is resumed. A caller's cancellation does not stop
    /// a job that is already queued.
    @discardableResult
    public func write<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        try await DatabaseJob.perform(isWrite: true, body, submit: thread.submit)
    }

    /// Runs `body` on the writer connection outside any group transaction, in a read transaction of its own.
    ///
    /// Writes inside `body` fail with `.readOnly`.
    @discardableResult
    public func read<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        try await DatabaseJob.perform(isWrite: false, body, submit: thread.submit)
    }

    /// Finishes the queued jobs, stops the thread and closes the connection. Later jobs fail with `.closed`.
    public func close() async {
        await thread.close()
    }
}

/// Runs batches of jobs on the writer thread: consecutive writes as one group transaction, reads one by one.
private final class GroupCommitter: Sendable {
    private let logger: Logger
    private let transactionDuration = Metrics.Timer(label: "sqlite_transaction_duration_seconds")

    init(logger: Logger) {
        self.logger = logger
    }

    func process(_ jobs: [DatabaseJob], on connection: SQLiteConnection) {
        var rest = jobs[...]
        while let first = rest.first {
            let run = rest.prefix { $0.isWrite == first.isWrite }
            rest = rest.dropFirst(run.count)
            if first.isWrite {
                commitGroup(run, on: connection)
            } else {
                runReadJobs(run, on: connection)
            }
        }
    }

    /// Runs `jobs` in as few transactions as possible (one, unless a job's failure made SQLite roll the whole
    /// transaction back) and resumes each caller only after its transaction committed.
    private func commitGroup(_ jobs: ArraySlice<DatabaseJob>, on connection: SQLiteConnection) {
        var remaining = jobs
        if (try? connection.isAutocommit()) == false {
            // A transaction left open by an earlier failure would make BEGIN fail for every later job.
            try? connection.runControl("ROLLBACK")
        }
        connection.discardCommitActions()
        while !remaining.isEmpty {
            do {
                try connection.runControl("BEGIN IMMEDIATE")
            } catch {
                logger.error("cannot begin write transaction", metadata: ["error": "\(error)"])
                for job in remaining { job.fail(error) }
                return
            }
            let start = ContinuousClock.now
            defer { transactionDuration.record(duration: start.duration(to: .now)) }
            var done: [DatabaseJob.Outcome] = []
            var abortError: (any Error)?
            while let job = remaining.popFirst() {
                var outcome: DatabaseJob.Outcome?
                do {
                    try connection.savepoint {
                        let result = job.run(connection)
                        outcome = result
                        if let error = result.error { throw error }
                    }
                    if let outcome { done.append(outcome) }
                } catch {
                    // The job's own error, or its savepoint failed: it alone is rolled back and told at once.
                    if let outcome { outcome.resume(error) } else { job.fail(error) }
                    if (try? connection.isAutocommit()) ?? true {
                        // SQLite rolled the whole transaction back (e.g. SQLITE_FULL): earlier jobs are lost too.
                        abortError = error
                        break
                    }
                }
            }
            if let abortError {
                logger.error(
                    "write transaction rolled back by a failing job",
                    metadata: ["error": "\(abortError)", "jobs": "\(done.count)"])
                connection.discardCommitActions()
                for outcome in done { outcome.resume(abortError) }
                continue
            }
            if done.isEmpty {
                // Every job failed and was rolled back to its savepoint: nothing to commit.
                try? connection.runControl("ROLLBACK")
                connection.discardCommitActions()
                continue
            }
            do {
                try connection.runControl("COMMIT")
            } catch {
                if (try? connection.isAutocommit()) == false {
                    try? connection.runControl("ROLLBACK")
                }
                connection.discardCommitActions()
                logger.error("group commit failed", metadata: ["error": "\(error)", "jobs": "\(done.count)"])
                for outcome in done { outcome.resume(error) }
                continue
            }
            connection.runCommitActions()
            logger.trace("group commit", metadata: ["jobs": "\(done.count)"])
            for outcome in done { outcome.resume(nil) }
        }
    }
}
