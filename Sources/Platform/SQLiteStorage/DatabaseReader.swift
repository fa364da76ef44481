/// A read-only connection on a dedicated thread, for read endpoints that should not queue behind writes.
///
/// Each `read` runs in its own read transaction, so it sees one consistent snapshot. Use one reader per concurrent
/// read stream you want; reads on one reader run one after another.
public final class DatabaseReader: Sendable {
    private let thread: DatabaseThread

    /// Opens the existing database at `path` read-only (`options.readOnly` is forced on) and starts the thread.
    public init(path: String, options: SQLiteConnection.Options = .init()) throws {
        var options = options
        options.readOnly = true
        let thread = DatabaseThread(maxBatch: 64, closedMessage: "database reader for '\(path)' is closed")
        try thread.start(
            name: "db-reader",
            open: { [options] in try SQLiteConnection(path: path, options: options) },
            process: { connection, jobs in runReadJobs(jobs, on: connection) })
        self.thread = thread
    }

    deinit {
        thread.beginClose()
    }

    /// Runs `body` on the reader thread in a read transaction and returns its result.
    @discardableResult
    public func read<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        try await DatabaseJob.perform(isWrite: false, body, submit: thread.submit)
    }

    /// Finishes the queued reads, stops the thread and closes the connection. Later reads fail with `.closed`.
    public func close() async {
        await thread.close()
    }
}
