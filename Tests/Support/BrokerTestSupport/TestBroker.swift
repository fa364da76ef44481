import Foundation
import Synchronization
import TestSupport

/// A private RabbitMQ node for tests, driven through `scripts/rabbitmq-node.sh`.
public final class TestBroker: Sendable {
    /// The node's AMQP URL (`amqp://guest:guest@127.0.0.1:PORT/%2f`).
    public let url: String
    private let nodeDirectory: String
    private static let shared = Mutex<Task<TestBroker, any Error>?>(nil)

    private init(url: String, nodeDirectory: String) {
        self.url = url
        self.nodeDirectory = nodeDirectory
    }

    /// One broker per test process. If `RABBITMQ_TEST_URL` and `RABBITMQ_TEST_NODE_DIR` are set (the Makefile
    /// started a node), uses that node; otherwise starts one in a fresh temporary directory and stops it when the
    /// process exits. Concurrent callers share one start.
    ///
    /// - Throws: At once, without starting or reaching any node, in a unit-test run (`make test-unit` sets
    ///   `UNIT_TESTS_ONLY=1`): a test that needs a broker belongs under Tests/Integration.
    public static func shared() async throws -> TestBroker {
        try refuseInUnitTestRun()
        let task = shared.withLock { task in
            if let task { return task }
            let started = Task { try await TestBroker.startShared() }
            task = started
            return started
        }
        return try await task.value
    }

    private static func startShared() async throws -> TestBroker {
        let environment = ProcessInfo.processInfo.environment
        if let url = environment["RABBITMQ_TEST_URL"], let directory = environment["RABBITMQ_TEST_NODE_DIR"],
            !url.isEmpty, !directory.isEmpty
        {
            return TestBroker(url: url, nodeDirectory: directory)
        }
        return try await startPrivate()
    }

    /// Starts a node of its own in a fresh temporary directory, stopped when the process exits. For tests that
    /// disrupt the broker (stop/start) and so must not share it with tests running in parallel.
    /// `extraConfiguration` lines are added to its `rabbitmq.conf` (e.g. a TLS listener). Throws at once in a
    /// unit-test run, like ``shared()``.
    public static func startPrivate(extraConfiguration: [String] = []) async throws -> TestBroker {
        try refuseInUnitTestRun()
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("rabbitmq-test-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let registerAtExit = nodesToStopAtExit.withLock { nodes in
            defer { nodes.append(directory) }
            return nodes.isEmpty
        }
        if registerAtExit {
            atexit {
                for directory in nodesToStopAtExit.withLock({ $0 }) {
                    _ = try? TestBroker.runScriptBlocking(["stop", directory])
                    try? FileManager.default.removeItem(atPath: directory)
                }
            }
        }
        let extra =
            extraConfiguration.isEmpty ? [:] : ["RABBITMQ_EXTRA_CONF": extraConfiguration.joined(separator: "\n")]
        let output = try await runScript(["start", directory], environment: extra)
        guard let url = output.split(separator: "\n").last(where: { $0.hasPrefix("amqp") }) else {
            throw TestBrokerError("rabbitmq-node.sh start printed no URL: \(output)")
        }
        try startWatchdog(directory: directory)
        return TestBroker(url: String(url), nodeDirectory: directory)
    }

    /// `scripts/test-unit.sh` sets `UNIT_TESTS_ONLY=1`: there, a test that asks for a broker fails fast with a message
    /// saying where it belongs, instead of starting a node.
    private static func refuseInUnitTestRun() throws {
        guard ProcessInfo.processInfo.environment["UNIT_TESTS_ONLY"] == "1" else { return }
        throw TestBrokerError(
            "this test needs a RabbitMQ node, but this is a unit-test run (UNIT_TESTS_ONLY=1, `make test-unit`): "
                + "move the test under Tests/Integration, or run `make test`")
    }

    /// `atexit` does not run when the test process is killed (and was seen not to finish under some `swift test`
    /// pipelines), so a detached shell also stops the node once this process is gone.
    private static func startWatchdog(directory: String) throws {
        let script = "\(repositoryRoot)/scripts/rabbitmq-node.sh"
        let watch = """
            while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done
            "$0" stop "$1"; rm -rf "$1"
            """
        _ = try spawn(["/usr/bin/setsid", "/bin/bash", "-c", watch, script, directory], output: "/dev/null")
    }

    /// Runs `rabbitmqctl` against the node and returns its standard output; throws with its standard error.
    public func ctl(_ arguments: [String]) async throws -> String {
        try await Self.runScript(["ctl", nodeDirectory] + arguments)
    }

    /// The number of messages (ready and unacknowledged) in `queue` (`list_queues name messages`), or `nil` if
    /// there is no such queue.
    public func messageCount(queue: String) async throws -> Int? {
        let output = try await ctl(["-q", "list_queues", "--no-table-headers", "name", "messages"])
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: "\t")
            if fields.count == 2 && fields[0] == queue { return Int(fields[1].trimmingCharacters(in: .whitespaces)) }
        }
        return nil
    }

    /// Stops the node (it keeps its data and port).
    public func stop() async throws {
        _ = try await Self.runScript(["stop", nodeDirectory])
    }

    /// Starts the node again on the same port.
    public func start() async throws {
        _ = try await Self.runScript(["start", nodeDirectory])
    }

    /// Closes every client connection (`rabbitmqctl close_all_connections "test"`).
    public func closeAllConnections() async throws {
        _ = try await ctl(["-q", "close_all_connections", "test"])
    }

    /// The broker's ids (Erlang pids) of the client connections whose `connection_name` client property is `name`.
    public func connectionIDs(named name: String) async throws -> [String] {
        let output = try await ctl(["-q", "list_connections", "--no-table-headers", "pid", "client_properties"])
        return output.split(separator: "\n")
            .filter { $0.contains("{\"connection_name\",\"\(name)\"}") }
            .compactMap { $0.split(separator: "\t").first.map(String.init) }
    }

    /// Closes the client connections whose `connection_name` client property is `name`; returns how many.
    /// Unlike ``closeAllConnections()`` this leaves other tests' connections alone.
    @discardableResult
    public func closeConnections(named name: String) async throws -> Int {
        let ids = try await connectionIDs(named: name)
        for id in ids { _ = try await ctl(["-q", "close_connection", id, "test"]) }
        return ids.count
    }

    // MARK: - Subprocesses

    private static func runScript(_ arguments: [String], environment: [String: String] = [:]) async throws -> String {
        try checked(arguments, await runProcess(scriptCommand(arguments), environment: environment))
    }

    private static func runScriptBlocking(_ arguments: [String]) throws -> String {
        try checked(arguments, runProcessBlocking(scriptCommand(arguments)))
    }

    private static func scriptCommand(_ arguments: [String]) -> [String] {
        ["/bin/bash", "\(repositoryRoot)/scripts/rabbitmq-node.sh"] + arguments
    }

    private static func checked(_ arguments: [String], _ outcome: ProcessOutcome) throws -> String {
        guard outcome.status == 0 else {
            throw TestBrokerError(
                "rabbitmq-node.sh \(arguments.joined(separator: " ")) exited \(outcome.status): \(outcome.errors)")
        }
        return outcome.output
    }
}

/// The node directories to stop when the process exits (read by the `atexit` handler, which cannot capture).
private let nodesToStopAtExit = Mutex<[String]>([])

/// A failed broker operation, with the command's standard error.
public struct TestBrokerError: Error, CustomStringConvertible {
    /// What failed.
    public var description: String

    init(_ description: String) { self.description = description }
}

/// A unique queue name per test so tests can run in parallel.
public func uniqueQueueName(_ prefix: String) -> String {
    "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
}
