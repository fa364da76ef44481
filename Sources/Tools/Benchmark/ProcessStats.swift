import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// CPU time and peak memory of one process, read from `/proc`.
public struct ProcessStats: Sendable, Equatable {
    /// utime + stime, in seconds.
    public var cpuSeconds: Double
    /// VmHWM (peak resident set), in KiB.
    public var peakRSSKiB: Int

    /// Reads the stats of `pid`; nil when the process is gone.
    public static func read(pid: Int32) -> ProcessStats? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let cpu = cpuSeconds(statLine: stat, ticksPerSecond: Double(sysconf(Int32(_SC_CLK_TCK))))
        else { return nil }
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        return ProcessStats(cpuSeconds: cpu, peakRSSKiB: peakRSSKiB(status: status) ?? 0)
    }

    /// utime + stime in seconds from a `/proc/PID/stat` line. The command name (field 2) may contain spaces and
    /// parentheses, so fields are counted from the last `)`.
    public static func cpuSeconds(statLine: String, ticksPerSecond: Double) -> Double? {
        guard let close = statLine.lastIndex(of: ")") else { return nil }
        let fields = statLine[statLine.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); utime is field 14, stime field 15.
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / ticksPerSecond
    }

    /// VmHWM in KiB from the text of `/proc/PID/status`.
    public static func peakRSSKiB(status: String) -> Int? {
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
        }
        return nil
    }
}

/// CPU time and context switches of one process summed over its live threads, read from
/// `/proc/<pid>/task/*/stat` and `/proc/<pid>/task/*/status` (the process-wide `status` counts only the main
/// thread's switches).
public struct ThreadTotals: Sendable, Equatable {
    /// utime + stime of every thread, in seconds.
    public var cpuSeconds: Double
    /// voluntary_ctxt_switches + nonvoluntary_ctxt_switches of every thread.
    public var contextSwitches: Int

    /// Creates totals.
    public init(cpuSeconds: Double, contextSwitches: Int) {
        self.cpuSeconds = cpuSeconds
        self.contextSwitches = contextSwitches
    }

    /// Sums the threads of `pid`; nil when the process is gone.
    public static func read(pid: Int32) -> ThreadTotals? {
        let directory = "/proc/\(pid)/task"
        guard let threads = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        var totals = ThreadTotals(cpuSeconds: 0, contextSwitches: 0)
        for thread in threads {
            // A thread may exit between the listing and the reads: it then counts for nothing.
            guard let stat = try? String(contentsOfFile: "\(directory)/\(thread)/stat", encoding: .utf8),
                let cpu = ProcessStats.cpuSeconds(statLine: stat, ticksPerSecond: ticks)
            else { continue }
            let status = (try? String(contentsOfFile: "\(directory)/\(thread)/status", encoding: .utf8)) ?? ""
            totals.cpuSeconds += cpu
            totals.contextSwitches += contextSwitches(status: status) ?? 0
        }
        return totals
    }

    /// voluntary_ctxt_switches + nonvoluntary_ctxt_switches from the text of a `status` file.
    public static func contextSwitches(status: String) -> Int? {
        var total: Int?
        for line in status.split(separator: "\n")
        where line.hasPrefix("voluntary_ctxt_switches:") || line.hasPrefix("nonvoluntary_ctxt_switches:") {
            guard let colon = line.firstIndex(of: ":"),
                let value = Int(line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            else { continue }
            total = (total ?? 0) + value
        }
        return total
    }
}

/// One of the project's executables, started as a process with its output in a log file.
final class ServiceProcess {
    let name: String
    let port: Int
    let logPath: String
    private let process = Process()

    /// Instance 1 is called `name`; further ones `name-2`, `name-3`.
    init(
        name: String, instance: Int = 1, binDirectory: String, port: Int, environment: [String: String],
        logDirectory: String
    ) {
        self.name = instance == 1 ? name : "\(name)-\(instance)"
        self.port = port
        logPath = "\(logDirectory)/\(self.name).log"
        process.executableURL = URL(fileURLWithPath: "\(binDirectory)/\(name)")
        process.arguments = ["--port", "\(port)"]
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        process.environment = env
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    func start() throws {
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    /// Whether `/readyz` answers 200.
    func isReady() -> Bool {
        let connection = BlockingHTTPConnection(port: port)
        return (try? connection.exchange(RequestTemplate.get("/readyz", port: port))) == 200
    }

    /// SIGTERM, then SIGKILL after `timeout` seconds; returns once the process is gone.
    func stop(timeout: Double = 15) async {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while process.isRunning {
            if ContinuousClock.now > deadline {
                kill(process.processIdentifier, SIGKILL)
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The last lines of its log.
    func logTail(lines: Int = 20) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }
}

/// A free TCP port on the loopback interface (bound, then released).
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}
