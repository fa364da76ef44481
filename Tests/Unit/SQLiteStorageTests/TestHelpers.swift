import Foundation
import SQLiteStorage
import Logging
import Testing

/// Runs `body` with a fresh temporary directory and removes it afterwards.
func withTemporaryDirectory<T>(_ body: (URL) async throws -> T) async throws -> T {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("StorageTests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    return try await body(directory)
}

/// A logger that only prints warnings and errors.
let quietLogger: Logger = {
    var logger = Logger(label: "StorageTests")
    logger.logLevel = .warning
    return logger
}()

/// Lets a test hold the writer thread inside one job until it opens the gate, so that the jobs submitted meanwhile
/// are all queued when the thread comes back: batch boundaries become deterministic.
final class Gate: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    private let enteredStream: AsyncStream<Void>
    private let enteredContinuation: AsyncStream<Void>.Continuation

    init() {
        (enteredStream, enteredContinuation) = AsyncStream<Void>.makeStream()
    }

    /// Called on the database thread: reports arrival, then blocks until `open()`.
    func hold() {
        enteredContinuation.yield()
        semaphore.wait()
    }

    /// Waits until some thread is inside `hold()`.
    func waitUntilHeld() async {
        var iterator = enteredStream.makeAsyncIterator()
        _ = await iterator.next()
    }

    /// Releases the thread inside `hold()`.
    func open() {
        semaphore.signal()
    }
}

// Closures are kept out of `#expect(...)`: with Swift 6.3.1 a closure inside a `#expect` expansion was seen to share
// its symbol with another closure of the same test function, so the wrong closure body ran. These helpers run the
// closure outside the macro; the test then checks the returned error.

/// The error `body` throws, or nil when it returns.
func thrownError<T>(_ body: () throws -> T) -> (any Error)? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

/// The error `body` throws, or nil when it returns.
func thrownError<T>(_ body: () async throws -> T) async -> (any Error)? {
    do {
        _ = try await body()
        return nil
    } catch {
        return error
    }
}

/// The `DatabaseError` `body` throws; nil when it returns or throws something else.
func databaseError<T>(_ body: () throws -> T) -> DatabaseError? {
    thrownError(body) as? DatabaseError
}

/// The `DatabaseError` `body` throws; nil when it returns or throws something else.
func databaseError<T>(_ body: () async throws -> T) async -> DatabaseError? {
    await thrownError(body) as? DatabaseError
}
