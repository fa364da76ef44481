import Foundation
package import Glibc
import Synchronization

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
    public static func shared() async throws -> TestBroker {
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
    /// `extraConfiguration` lines are added to its `rabbitmq.conf` (e.g. a TLS listener).
    public static func startPrivate(extraConfiguration: [String] = []) async throws -> TestBroker {
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
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try runScriptBlocking(arguments, environment: environment) })
            }
        }
    }

    /// Runs the script with `posix_spawn` and `waitpid` (Foundation's `Process` sometimes never noticed the script's
    /// exit here), its output in files, not pipes: the node it starts runs on in the background and could hold an
    /// inherited pipe open.
    private static func runScriptBlocking(_ arguments: [String], environment: [String: String] = [:]) throws -> String {
        let scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("rabbitmq-node-\(UUID().uuidString)")
        let outputPath = scratch.path + ".out"
        let errorPath = scratch.path + ".err"
        defer {
            unlink(outputPath)
            unlink(errorPath)
        }
        let script = "\(repositoryRoot)/scripts/rabbitmq-node.sh"
        let pid = try spawn(
            ["/bin/bash", script] + arguments, output: outputPath, errors: errorPath, environment: environment)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let stdout = String(decoding: FileManager.default.contents(atPath: outputPath) ?? Data(), as: UTF8.self)
        let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        guard exitCode == 0 else {
            let stderr = String(decoding: FileManager.default.contents(atPath: errorPath) ?? Data(), as: UTF8.self)
            throw TestBrokerError("rabbitmq-node.sh \(arguments.joined(separator: " ")) exited \(exitCode): \(stderr)")
        }
        return stdout
    }
}

/// Starts `arguments[0]` with standard input from /dev/null and output to files, and no other file descriptor of
/// this process; returns its pid. `environment` is added to this process's own.
///
/// Closing the rest matters: SwiftNIO opens sockets without `SOCK_CLOEXEC`, so without it the child (and the broker
/// node and watchdog it leaves running until the test process exits) would hold a copy of every socket the tests in
/// this process have open at that moment. A server's `close()` then sends no FIN, and a test waiting for the server
/// to close a connection (graceful shutdown, idle timeout) hangs.
package func spawn(
    _ arguments: [String], output: String, errors: String? = nil, environment: [String: String] = [:]
) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, errors ?? output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    if let closeFrom = addCloseFrom {
        _ = closeFrom(&actions, 3)
    }
    let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid: pid_t = 0
    let spawned: Int32
    if environment.isEmpty {
        spawned = argv.withUnsafeBufferPointer { argv in
            posix_spawn(&pid, arguments[0], &actions, nil, argv.baseAddress!, environ)
        }
    } else {
        var merged = ProcessInfo.processInfo.environment
        merged.merge(environment) { $1 }
        let envp: [UnsafeMutablePointer<CChar>?] = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in envp { free(pointer) } }
        spawned = argv.withUnsafeBufferPointer { argv in
            envp.withUnsafeBufferPointer { envp in
                posix_spawn(&pid, arguments[0], &actions, nil, argv.baseAddress!, envp.baseAddress!)
            }
        }
    }
    guard spawned == 0 else { throw TestBrokerError("posix_spawn of \(arguments[0]) failed: \(spawned)") }
    return pid
}

/// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later). Swift's Glibc module does not define
/// `_GNU_SOURCE`, so the declaration is not imported: look it up at run time. Older glibc: `nil`, children inherit.
private let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
    guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
    return unsafeBitCast(
        symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
}()

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

/// Polls `condition` until it is true or `timeout` passes; then throws an error with `message`. Use instead of sleeps.
public func eventually(
    timeout: Duration = .seconds(10), _ message: String, _ condition: @Sendable () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    var pause = Duration.milliseconds(10)
    while true {
        if try await condition() { return }
        if ContinuousClock.now >= deadline { throw TestBrokerError("timed out after \(timeout): \(message)") }
        try await Task.sleep(for: pause)
        pause = min(pause * 2, .milliseconds(200))
    }
}
