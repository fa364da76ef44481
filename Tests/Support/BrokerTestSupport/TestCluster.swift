import Foundation
import Synchronization
import TestSupport

/// A private 3-node RabbitMQ cluster for tests, driven through `scripts/rabbitmq-cluster.sh`: the nodes run on free
/// loopback ports, share an Erlang cookie in the cluster's own directory, and are joined with
/// `rabbitmqctl join_cluster`. Forming it takes about 25 s on a loaded 2-core machine, so a test process starts one
/// (``shared()``) and its tests share it.
///
/// Tests that stop or kill a node run one at a time (one `.serialized` suite) and bring every node back before they
/// return; with one node of three down, quorum queues keep a majority and clients given ``urls`` carry on.
public final class TestCluster: Sendable {
    /// The nodes' AMQP URLs (`amqp://guest:guest@127.0.0.1:PORT/%2f`), node 1 first.
    public let nodeURLs: [String]
    private let directory: String
    private static let shared = Mutex<Task<TestCluster, any Error>?>(nil)

    private init(nodeURLs: [String], directory: String) {
        self.nodeURLs = nodeURLs
        self.directory = directory
    }

    /// Every node's URL, comma-separated, node 1 first: a `RABBITMQ_URL` for the whole cluster.
    public var urls: String { nodeURLs.joined(separator: ",") }

    /// One cluster per test process, started on first use and stopped when the process exits. Concurrent callers
    /// share one start. If `RABBITMQ_TEST_CLUSTER_DIR` names the directory of a cluster that
    /// `scripts/rabbitmq-cluster.sh start` formed (a script started it, e.g. while the tests were building), that
    /// cluster is used and left running. Throws at once in a unit-test run (`UNIT_TESTS_ONLY=1`), like
    /// ``TestBroker/shared()``.
    public static func shared() async throws -> TestCluster {
        guard ProcessInfo.processInfo.environment["UNIT_TESTS_ONLY"] != "1" else {
            throw TestBrokerError(
                "this test needs a RabbitMQ cluster, but this is a unit-test run (UNIT_TESTS_ONLY=1, `make test-unit`):"
                    + " move the test under Tests/Integration, or run `make test`")
        }
        let task = shared.withLock { task in
            if let task { return task }
            let started = Task { try await TestCluster.start() }
            task = started
            return started
        }
        return try await task.value
    }

    private static func start() async throws -> TestCluster {
        if let given = ProcessInfo.processInfo.environment["RABBITMQ_TEST_CLUSTER_DIR"], !given.isEmpty {
            let output = try await run(["start", given])
            return try TestCluster(startOutput: output, directory: given)
        }
        let name = "rabbitmq-cluster-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))"
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(name).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        clusterToStopAtExit.withLock { $0 = directory }
        atexit {
            if let directory = clusterToStopAtExit.withLock({ $0 }) {
                _ = try? runProcessBlocking(["/bin/bash", TestCluster.script, "stop", directory])
                try? FileManager.default.removeItem(atPath: directory)
            }
        }
        try stopWhenThisProcessEnds(directory)

        return try TestCluster(startOutput: try await run(["start", directory, "3"]), directory: directory)
    }

    /// A cluster of `nodes` nodes of its own, for a test that stops and starts nodes and so must not share
    /// ``shared()`` with tests running beside it. Forming it takes about 25 s (up to a minute on a busy machine).
    /// Stop it with ``stop()``; if the test process ends first, a detached shell stops it.
    public static func startPrivate(nodes: Int = 3) async throws -> TestCluster {
        guard ProcessInfo.processInfo.environment["UNIT_TESTS_ONLY"] != "1" else {
            throw TestBrokerError("this test needs a RabbitMQ cluster, but this is a unit-test run (UNIT_TESTS_ONLY=1)")
        }
        let name = "rabbitmq-private-cluster-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))"
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(name).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try stopWhenThisProcessEnds(directory)
        return try TestCluster(startOutput: try await run(["start", directory, "\(nodes)"]), directory: directory)
    }

    /// Stops every node of a cluster from ``startPrivate(nodes:)`` and removes its directory.
    public func stop() async throws {
        _ = try await Self.run(["stop", directory])
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// `atexit` does not run when the test process is killed: a detached shell stops the nodes in `directory` once
    /// this process is gone.
    private static func stopWhenThisProcessEnds(_ directory: String) throws {
        let watch = """
            while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done
            "$0" stop "$1"; rm -rf "$1"
            """
        _ = try spawn(["/usr/bin/setsid", "/bin/bash", "-c", watch, script, directory], output: "/dev/null")
    }

    /// The cluster whose `rabbitmq-cluster.sh start` printed `startOutput`.
    private convenience init(startOutput: String, directory: String) throws {
        guard let line = startOutput.split(separator: "\n").last(where: { $0.hasPrefix("amqp") }) else {
            throw TestBrokerError("rabbitmq-cluster.sh start printed no URLs: \(startOutput)")
        }
        self.init(nodeURLs: line.split(separator: ",").map(String.init), directory: directory)
    }

    /// Stops node `node` (1-based) gracefully and waits until it is gone.
    public func stopNode(_ node: Int) async throws {
        _ = try await Self.run(["stop-node", directory, "\(node)"])
    }

    /// Starts node `node` (1-based) again on its port and waits until it has rejoined the cluster.
    public func startNode(_ node: Int) async throws {
        _ = try await Self.run(["start-node", directory, "\(node)"])
    }

    /// Runs `rabbitmqctl` against node `node` (1-based) and returns its standard output.
    public func ctl(node: Int, _ arguments: [String]) async throws -> String {
        try await Self.run(["ctl", directory, "\(node)"] + arguments)
    }

    /// How many client connections node `node` (1-based, running) serves whose `connection_name` is `name`.
    /// (`list_connections` lists the whole cluster's; a connection's pid names its node.)
    public func connectionCount(named name: String, onNode node: Int) async throws -> Int {
        let nodeName = try nodeName(node)
        let output = try await ctl(
            node: node, ["-q", "list_connections", "--no-table-headers", "pid", "client_properties"])
        return output.split(separator: "\n").filter {
            $0.hasPrefix("<\(nodeName).") && $0.contains("{\"connection_name\",\"\(name)\"}")
        }.count
    }

    /// The Erlang node name of node `node` (1-based), from its `node.env`.
    private func nodeName(_ node: Int) throws -> String {
        let text = try String(contentsOfFile: "\(directory)/node-\(node)/node.env", encoding: .utf8)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("NODE_NAME=") }) else {
            throw TestBrokerError("no NODE_NAME in node-\(node)/node.env")
        }
        return String(line.dropFirst("NODE_NAME=".count))
    }

    /// `name`'s type (`classic`, `quorum`) and message count as node `node` (1-based) reports them, or `nil` if the
    /// queue does not exist.
    public func queue(_ name: String, onNode node: Int = 1) async throws -> (type: String, messages: Int)? {
        let output = try await ctl(node: node, ["-q", "list_queues", "--no-table-headers", "name", "type", "messages"])
        for line in output.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " }).map(String.init)
            if fields.count == 3, fields[0] == name { return (fields[1], Int(fields[2]) ?? -1) }
        }
        return nil
    }

    static var script: String { "\(repositoryRoot)/scripts/rabbitmq-cluster.sh" }

    private static func run(_ arguments: [String]) async throws -> String {
        let outcome = try await runProcess(["/bin/bash", script] + arguments)
        guard outcome.status == 0 else {
            throw TestBrokerError(
                "rabbitmq-cluster.sh \(arguments.joined(separator: " ")) exited \(outcome.status): \(outcome.errors)")
        }
        return outcome.output
    }
}

/// The cluster directory to stop when the process exits (read by the `atexit` handler, which cannot capture).
private let clusterToStopAtExit = Mutex<String?>(nil)
