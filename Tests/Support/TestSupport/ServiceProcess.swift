public import Foundation

/// One of the project's executables, started as a real process for end-to-end tests.
/// Its stderr and stdout go to a log file, shown when a test fails.
public final class ServiceProcess: Sendable {
    /// The executable's name, e.g. `user-service`.
    public let name: String
    /// Where its output goes.
    public let logPath: String
    private let arguments: [String]
    private let environment: [String: String]
    private let state = LockedBox<Process?>(nil)

    /// Prepares (does not start) a process. `environment` is added to this process's own.
    public init(_ name: String, arguments: [String] = [], environment: [String: String], logDirectory: String) {
        self.name = name
        self.arguments = arguments
        self.environment = environment
        self.logPath = "\(logDirectory)/\(name).log"
    }

    /// The directory with the built executables: `SERVICE_BIN_DIR`, else `.build/debug` in the repository.
    public static var binDirectory: String {
        if let dir = ProcessInfo.processInfo.environment["SERVICE_BIN_DIR"], !dir.isEmpty { return dir }
        return repositoryRoot + "/.build/debug"
    }

    /// Starts the process (again, after it stopped).
    public func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "\(Self.binDirectory)/\(name)")
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        process.environment = env
        if !FileManager.default.fileExists(atPath: logPath) {
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        try log.seekToEnd()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        state.withLock { $0 = process }
        try Self.killWhenThisProcessEnds(process.processIdentifier)
    }

    /// A test that fails, times out or crashes must not leave its services running (they would retry a broker that is
    /// gone, forever, and hold their ports): a detached shell SIGKILLs `child` once this process is gone, and exits
    /// by itself when the child exits first. It is started through a shell that exits at once and is reaped here, so
    /// the watcher is never a child of this process: an exited child nobody reaps would be a zombie that Swift
    /// Testing's exit-test monitor (`waitid` on any child) spins on.
    private static func killWhenThisProcessEnds(_ child: pid_t) throws {
        let watch = """
            while kill -0 \(getpid()) 2>/dev/null; do
                kill -0 \(child) 2>/dev/null || exit 0
                sleep 1
            done
            kill -KILL \(child) 2>/dev/null
            """
        let launcher = try spawn(
            ["/bin/bash", "-c", "/usr/bin/setsid /bin/bash -c \"$0\" </dev/null >/dev/null 2>&1 &", watch],
            output: "/dev/null")
        var status: Int32 = 0
        while waitpid(launcher, &status, 0) == -1 && errno == EINTR {}
    }

    /// Sends `signal` and waits until the process has exited; returns its exit status.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, timeout: Duration = .seconds(20)) async throws -> Int32 {
        guard let process = state.withLock({ $0 }) else { return 0 }
        if process.isRunning { kill(process.processIdentifier, signal) }
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                kill(process.processIdentifier, SIGKILL)
                throw TestFailure("\(name) did not exit within \(timeout) after signal \(signal)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        state.withLock { $0 = nil }
        return process.terminationStatus
    }

    /// Sends a signal without waiting (e.g. SIGHUP).
    public func send(_ signal: Int32) {
        if let process = state.withLock({ $0 }), process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// The whole log so far.
    public func log() -> String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    /// Whether it is running.
    public var isRunning: Bool { state.withLock { $0?.isRunning ?? false } }

    /// The last lines of its log, for failure messages.
    public func logTail(lines: Int = 40) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    deinit {
        if let process = state.withLock({ $0 }), process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
    }
}

/// A value behind a lock, for test support types that must be Sendable.
final class LockedBox<Value>: @unchecked Sendable {
    // Safe: every access to `value` goes through `lock`.
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
