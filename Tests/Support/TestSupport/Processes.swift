import Foundation
package import Glibc

/// How a process run to completion ended: its exit status and what it wrote.
public struct ProcessOutcome: Sendable {
    /// The exit code, or 128 + the signal number when a signal ended it (as a shell reports it).
    public var status: Int32
    /// Its standard output.
    public var output: String
    /// Its standard error.
    public var errors: String
}

/// Runs `arguments` (`arguments[0]` an absolute path) to completion and returns how it ended; waits on a thread of
/// its own, not on the cooperative pool. `environment` is added to this process's own.
public func runProcess(_ arguments: [String], environment: [String: String] = [:]) async throws -> ProcessOutcome {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try runProcessBlocking(arguments, environment: environment) })
        }
    }
}

/// ``runProcess(_:environment:)`` blocking the calling thread, for places that cannot await (`defer`, `atexit`).
///
/// Uses `spawn` and `waitpid` (Foundation's `Process` sometimes never noticed a script's exit here), with output in
/// files, not pipes: a child may leave a process running in the background (a broker node) that would hold an
/// inherited pipe open.
public func runProcessBlocking(_ arguments: [String], environment: [String: String] = [:]) throws -> ProcessOutcome {
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("process-\(UUID().uuidString)").path
    let outputPath = scratch + ".out"
    let errorPath = scratch + ".err"
    defer {
        unlink(outputPath)
        unlink(errorPath)
    }
    let pid = try spawn(arguments, output: outputPath, errors: errorPath, environment: environment)
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let read = { (path: String) in String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self) }
    let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return ProcessOutcome(status: exitStatus, output: read(outputPath), errors: read(errorPath))
}

/// Starts `arguments[0]` (an absolute path) with standard input from /dev/null and output to files, and no other
/// file descriptor of this process; returns its pid. `errors` defaults to `output`; `environment` is added to this
/// process's own.
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
    guard spawned == 0 else { throw TestFailure("posix_spawn of \(arguments[0]) failed: \(spawned)") }
    return pid
}

/// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later). Swift's Glibc module does not define
/// `_GNU_SOURCE`, so the declaration is not imported: look it up at run time. Older glibc: `nil`, children inherit.
private let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
    guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
    return unsafeBitCast(
        symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
}()
