import Foundation
import Logging
import SQLiteStorage
import TestSupport

@testable import UserService

/// A `SQLiteUserStore` on a fresh file in a temporary directory, removed afterwards; `path` lets a test open the
/// file itself to look at what was stored, or to break it.
func withUserStore<T>(
    keptSentRows: Int = 10_000, _ body: (_ store: SQLiteUserStore, _ path: String) async throws -> T
) async throws -> T {
    let directory = try temporaryDirectory("UserServiceTests")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = "\(directory)/users.sqlite"
    let store = try SQLiteUserStore(path: path, keptSentRows: keptSentRows, logger: quietLogger)
    return try await body(store, path)
}

/// A logger that only prints warnings and errors.
let quietLogger: Logger = {
    var logger = Logger(label: "UserServiceTests")
    logger.logLevel = .warning
    return logger
}()

/// The first column of the first row of `sql`, as Int, read on a connection of the test's own.
func scalar(_ path: String, _ sql: String) throws -> Int? {
    try SQLiteConnection(path: path).queryFirst(sql)?[0].intValue
}

/// True when `stream` yields within `timeout`. A stream whose wait timed out is finished: use it no more.
func yields(_ stream: AsyncStream<Void>, within timeout: Duration = .seconds(10)) async -> Bool {
    await withTaskGroup(of: Bool.self) { group in
        group.addTask {
            var iterator = stream.makeAsyncIterator()
            return await iterator.next() != nil
        }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return false
        }
        let first = await group.next() ?? false
        group.cancelAll()
        return first
    }
}

/// The `UserStoreError` `body` throws; nil when it returns or throws something else. (Closures are kept out of
/// `#expect`, whose expansion has been seen to mix up the closures of one test.)
func refusal<T>(_ body: () async throws -> T) async -> UserStoreError? {
    do {
        _ = try await body()
        return nil
    } catch {
        return error as? UserStoreError
    }
}
