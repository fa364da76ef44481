import Dispatch
import Foundation
import Synchronization

/// A unit of work for a `DatabaseThread`, type-erased from the caller's closure and continuation.
struct DatabaseJob: Sendable {
    /// The caller's result, held until the caller may see it.
    struct Outcome: Sendable {
        /// The error the body threw, or nil when it returned.
        let error: (any Error)?
        /// Resumes the caller: with `override` when given, else with the body's result or error.
        let resume: @Sendable (_ override: (any Error)?) -> Void
    }

    /// True for `write` jobs (group-committed), false for `read` jobs.
    let isWrite: Bool
    /// Runs the body on the database thread without resuming the caller.
    let run: @Sendable (SQLiteConnection) -> Outcome
    /// Resumes the caller with `error` without running the body.
    let fail: @Sendable (any Error) -> Void

    /// Suspends the calling task until `submit`'s job has run and been resolved.
    static func perform<T: Sendable>(
        isWrite: Bool, _ body: @escaping @Sendable (SQLiteConnection) throws -> T,
        submit: (DatabaseJob) -> Void
    ) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let job = DatabaseJob(
                isWrite: isWrite,
                run: { connection in
                    let result = Result { try body(connection) }
                    let error: (any Error)? = if case .failure(let error) = result { error } else { nil }
                    return Outcome(error: error) { override in
                        if let override {
                            continuation.resume(throwing: override)
                        } else {
                            continuation.resume(with: result)
                        }
                    }
                },
                fail: { continuation.resume(throwing: $0) })
            submit(job)
        }
    }
}

/// A dedicated thread that owns one `SQLiteConnection` and runs queued jobs on it.
///
/// The connection is opened on the thread and never leaves it. Callers hand jobs over through a `Mutex`-protected
/// queue and wake the thread with a semaphore (one signal per submitted job or close request).
final class DatabaseThread: Sendable {
    private struct State {
        var jobs: [DatabaseJob] = []
        var isClosing = false
        var isFinished = false
        var closeWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())
    private let wakeUp = DispatchSemaphore(value: 0)
    private let maxBatch: Int
    private let closedMessage: String

    init(maxBatch: Int, closedMessage: String) {
        self.maxBatch = maxBatch
        self.closedMessage = closedMessage
    }

    /// Starts the thread, opens the connection on it with `open`, and returns once that succeeded (or throws its
    /// error, after the thread ended). Then the thread hands each batch of queued jobs to `process`.
    func start(
        name: String, open: @escaping @Sendable () throws -> SQLiteConnection,
        process: @escaping @Sendable (SQLiteConnection, [DatabaseJob]) -> Void
    ) throws {
        let started = DispatchSemaphore(value: 0)
        let openResult = Mutex<Result<Void, any Error>>(.success(()))
        let thread = Thread { [self] in
            let connection: SQLiteConnection
            do {
                connection = try open()
            } catch {
                openResult.withLock { $0 = .failure(error) }
                state.withLock { $0.isFinished = true }
                started.signal()
                return
            }
            started.signal()
            runLoop(connection, process: process)
        }
        thread.name = name
        thread.start()
        started.wait()
        try openResult.withLock { $0 }.get()
    }

    /// Queues `job`, or fails it at once when the thread is closing.
    func submit(_ job: DatabaseJob) {
        // Only a job that finds the queue empty wakes the thread: it takes everything queued when it looks.
        let outcome: (accepted: Bool, wake: Bool) = state.withLock { state in
            guard !state.isClosing else { return (false, false) }
            state.jobs.append(job)
            return (true, state.jobs.count == 1)
        }
        if !outcome.accepted {
            job.fail(DatabaseError.closed(closedMessage))
        } else if outcome.wake {
            wakeUp.signal()
        }
    }

    /// Stops accepting jobs; the thread finishes the queued ones, closes the connection and ends.
    func beginClose() {
        let signal = state.withLock { state in
            defer { state.isClosing = true }
            return !state.isClosing
        }
        if signal { wakeUp.signal() }
    }

    /// Like `beginClose`, then waits until the thread has closed the connection.
    func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let finished = state.withLock { state in
                if !state.isFinished { state.closeWaiters.append(continuation) }
                return state.isFinished
            }
            if finished {
                continuation.resume()
            } else {
                beginClose()
            }
        }
    }

    private func runLoop(_ connection: SQLiteConnection, process: (SQLiteConnection, [DatabaseJob]) -> Void) {
        while true {
            let batch: [DatabaseJob]? = state.withLock { state in
                if state.jobs.isEmpty {
                    return state.isClosing ? nil : []
                }
                let count = min(state.jobs.count, maxBatch)
                defer { state.jobs.removeFirst(count) }
                return Array(state.jobs.prefix(count))
            }
            guard let batch else { break }
            if batch.isEmpty {
                wakeUp.wait()  // sleeps only while nothing is queued
            } else {
                process(connection, batch)
            }
        }
        connection.close()
        let waiters = state.withLock { state in
            state.isFinished = true
            defer { state.closeWaiters.removeAll() }
            return state.closeWaiters
        }
        for waiter in waiters {
            waiter.resume()
        }
    }
}

/// Runs read jobs one by one, each in its own read transaction (a consistent snapshot) with `PRAGMA query_only` on,
/// so a read body that tries to write fails with `.readOnly` instead of writing.
///
/// The pragmas and transaction control go through the statement cache: compiled once per connection, not per batch.
func runReadJobs(_ jobs: some Collection<DatabaseJob>, on connection: SQLiteConnection) {
    do {
        try connection.runControl("PRAGMA query_only=ON")
    } catch {
        for job in jobs { job.fail(error) }
        return
    }
    defer { try? connection.runControl("PRAGMA query_only=OFF") }
    for job in jobs {
        do {
            try connection.runControl("BEGIN DEFERRED")
        } catch {
            job.fail(error)
            continue
        }
        let outcome = job.run(connection)
        if (try? connection.isAutocommit()) == false {
            try? connection.runControl("ROLLBACK")
        }
        connection.discardCommitActions()  // a read transaction commits nothing
        outcome.resume(nil)
    }
}
