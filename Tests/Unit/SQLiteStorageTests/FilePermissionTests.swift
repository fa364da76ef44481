import Foundation
import Logging
import SQLiteStorage
import Testing

/// Users' names and emails are their owner's to read: a database file this layer creates, and its WAL and shared
/// memory files, are readable and writable by the owner only, whatever the umask.
struct FilePermissionTests {
    private func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return try #require(attributes[.posixPermissions] as? Int)
    }

    @Test func aNewDatabaseAndItsWALAreOwnerOnly() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("private.sqlite").path
            let previous = umask(0o022)  // the common default, which would leave the file world-readable
            defer { umask(previous) }
            let writer = try DatabaseWriter(path: path, migrations: [["CREATE TABLE t(x TEXT);"]], logger: Logger(label: "test"))
            try await writer.write { db in try db.run("INSERT INTO t(x) VALUES ('secret')") }
            for file in [path, path + "-wal", path + "-shm"] where FileManager.default.fileExists(atPath: file) {
                let mode = try mode(file)
                #expect(mode & 0o077 == 0, "\(file) is \(String(mode, radix: 8))")
            }
            #expect(FileManager.default.fileExists(atPath: path + "-wal"), "WAL mode makes a -wal file")
        }
    }

    @Test func anExistingFileKeepsTheModeItsOwnerGaveIt() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("shared.sqlite").path
            #expect(FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o640]))
            _ = try SQLiteConnection(path: path)
            #expect(try mode(path) == 0o640)
        }
    }
}
