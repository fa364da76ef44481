import Foundation
import Synchronization
import TestSupport

/// A private PostgreSQL server for tests, driven through `scripts/postgres-node.sh`: one per test process, a fresh
/// database per test.
public final class TestPostgres: Sendable {
    /// The server's base URL, `postgres://USER:PASSWORD@127.0.0.1:PORT` (add `/DATABASE`).
    public let baseURL: String
    private let nodeDirectory: String
    private static let shared = Mutex<Task<TestPostgres, any Error>?>(nil)

    private init(baseURL: String, nodeDirectory: String) {
        self.baseURL = baseURL
        self.nodeDirectory = nodeDirectory
    }

    /// One server per test process. If `POSTGRES_TEST_NODE_DIR` is set (a script started a server there), uses that
    /// server; otherwise starts one in a fresh temporary directory, destroyed when the process exits. Concurrent
    /// callers share one start.
    ///
    /// - Throws: At once in a unit-test run (`UNIT_TESTS_ONLY=1`): a test that needs a database server belongs
    ///   under Tests/Integration.
    public static func shared() async throws -> TestPostgres {
        guard ProcessInfo.processInfo.environment["UNIT_TESTS_ONLY"] != "1" else {
            throw TestFailure(
                "this test needs a PostgreSQL server, but this is a unit-test run (UNIT_TESTS_ONLY=1): "
                    + "move it under Tests/Integration, or run `make test`")
        }
        let task = shared.withLock { task in
            if let task { return task }
            let started = Task { try await TestPostgres.start() }
            task = started
            return started
        }
        return try await task.value
    }

    private static func start() async throws -> TestPostgres {
        if let directory = ProcessInfo.processInfo.environment["POSTGRES_TEST_NODE_DIR"], !directory.isEmpty {
            let url = try await runScript(["start", directory])
            return TestPostgres(baseURL: url, nodeDirectory: directory)
        }
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("postgres-test-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))")
            .path
        atexit {
            if let directory = startedDirectory.withLock({ $0 }) {
                _ = try? runProcessBlocking(["/bin/bash", "\(repositoryRoot)/scripts/postgres-node.sh", "destroy", directory])
            }
        }
        startedDirectory.withLock { $0 = directory }
        let url = try await runScript(["start", directory])
        // `atexit` does not run when the test process is killed: a detached shell also removes the server then.
        let watch = """
            while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done
            "$0" destroy "$1"
            """
        _ = try spawn(
            ["/usr/bin/setsid", "/bin/bash", "-c", watch, "\(repositoryRoot)/scripts/postgres-node.sh", directory],
            output: "/dev/null")
        return TestPostgres(baseURL: url, nodeDirectory: directory)
    }

    /// Creates an empty database owned by the server's login role and returns its URL.
    public func freshDatabase(_ prefix: String = "test") async throws -> String {
        let name = "\(prefix)_\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: ""))"
        let role = baseURL.dropFirst("postgres://".count).prefix(while: { $0 != ":" })
        _ = try await Self.runScript(["psql", nodeDirectory, "-q", "-c", "CREATE DATABASE \(name) OWNER \(role)"])
        return "\(baseURL)/\(name)"
    }

    /// Runs SQL as the superuser in `database` and returns psql's unaligned, tuples-only output.
    public func psql(_ sql: String, database: String) async throws -> String {
        try await Self.runScript(["psql", nodeDirectory, "-d", database, "-At", "-c", sql])
    }

    private static func runScript(_ arguments: [String]) async throws -> String {
        let outcome = try await runProcess(["/bin/bash", "\(repositoryRoot)/scripts/postgres-node.sh"] + arguments)
        guard outcome.status == 0 else {
            throw TestFailure("postgres-node.sh \(arguments.first ?? "") exited \(outcome.status): \(outcome.errors)")
        }
        return outcome.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// The server this process started, destroyed at exit (read by the `atexit` handler, which cannot capture).
private let startedDirectory = Mutex<String?>(nil)
