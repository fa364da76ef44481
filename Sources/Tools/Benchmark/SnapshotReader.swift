import Foundation
import SQLiteStorage

/// Where the order service keeps its snapshots: the SQLite file the bench gave it, or a PostgreSQL database
/// (read with `psql`, so the bench needs no PostgreSQL client of its own).
enum SnapshotSource: Sendable {
    case sqlite(path: String)
    case postgres(url: String)

    /// How often a waiting caller polls: `psql` is a process per query.
    var pollInterval: Duration {
        switch self {
        case .sqlite: .milliseconds(50)
        case .postgres: .milliseconds(250)
        }
    }
}

/// A snapshot row: the email the load generator made, and the two timestamps as written (ISO 8601).
struct SnapshotRow {
    var email: String
    var occurredAt: String?
    var updatedAt: String?
}

/// Reads snapshots of one run; keeps its SQLite connection open between calls. Not thread-safe: one per thread.
final class SnapshotReader {
    private let source: SnapshotSource
    private let runID: String
    private var database: SQLiteConnection?

    init(_ source: SnapshotSource, runID: String) {
        self.source = source
        self.runID = runID
    }

    deinit { database?.close() }

    /// Snapshots of this run committed so far; nil while the database cannot be read (not created yet).
    func count() -> Int? {
        switch source {
        case .sqlite(let path):
            guard let database = openSQLite(path) else { return nil }
            // A fresh file per run: every row is this run's.
            return (try? database.queryFirst("SELECT count(*) AS n FROM user_snapshots")?.int("n")) ?? nil
        case .postgres(let url):
            // The database may be shared with earlier runs: count this run's emails only (runID is hex).
            let output = try? Self.psql(url, "SELECT count(*) FROM user_snapshots WHERE email LIKE 'b\(runID)-%'")
            return output.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
    }

    /// Every snapshot of this run.
    func rows() throws -> [SnapshotRow] {
        switch source {
        case .sqlite(let path):
            guard let database = openSQLite(path) else { throw BenchmarkError("cannot open \(path)") }
            return try database.query("SELECT email, occurred_at, updated_at FROM user_snapshots").compactMap { row in
                row.string("email").map { SnapshotRow(email: $0, occurredAt: row.string("occurred_at"), updatedAt: row.string("updated_at")) }
            }
        case .postgres(let url):
            let output = try Self.psql(
                url, "SELECT email, occurred_at, updated_at FROM user_snapshots WHERE email LIKE 'b\(runID)-%'")
            return Self.parseRows(output)
        }
    }

    /// `psql -At` output with tab-separated fields: email, occurred_at, updated_at (empty for NULL).
    static func parseRows(_ output: String) -> [SnapshotRow] {
        output.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 3, !fields[0].isEmpty else { return nil }
            return SnapshotRow(
                email: fields[0], occurredAt: fields[1].isEmpty ? nil : fields[1],
                updatedAt: fields[2].isEmpty ? nil : fields[2])
        }
    }

    private func openSQLite(_ path: String) -> SQLiteConnection? {
        if database == nil, FileManager.default.fileExists(atPath: path) {
            var options = SQLiteConnection.Options()
            options.readOnly = true
            database = try? SQLiteConnection(path: path, options: options)
        }
        return database
    }

    /// Runs one query with `psql` and returns its unaligned, tab-separated output.
    static func psql(_ url: String, _ query: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", query, url]
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw BenchmarkError("psql failed (\(process.terminationStatus)): \(errorText.prefix(300))")
        }
        return String(decoding: data, as: UTF8.self)
    }
}
