import Logging
import NIOCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Which connections the server serves, and what happens to a newcomer when it is full: the policy for connection
/// pressure, in one place.
///
/// A served connection is *idle* while it waits for the first byte of a request (new, or kept alive after a
/// response) and *busy* from that byte until its response is written; busy or not, it is *stalled* while what it was
/// sent waits for its client to read (the channel is not writable). When a new connection arrives with every slot
/// taken, the connection stalled the longest is closed to make room, else the one idle the longest, so clients that
/// do not read or do not ask cannot lock out a health check.
/// When no connection is stalled or idle the newcomer is *refused*: its first request is answered 503 with `Retry-After` (by
/// ``RequestAssemblyHandler``). Refused connections have a small budget of their own; beyond it a newcomer is
/// *dropped* (closed at once). Closings and refusals are logged as one aggregated warning per interval, never one
/// line per connection.
///
/// Called from every connection's event loop; the state is behind a mutex and no call blocks on I/O.
final class ConnectionRegistry: Sendable {
    /// What to do with a new connection.
    enum Admission: Equatable {
        /// Serve it.
        case serve
        /// Answer its first request 503 and close it.
        case refuse
        /// Close it at once.
        case drop
    }

    private struct Entry {
        let channel: any Channel
        /// When it became idle, as a tick of `State.clock`; nil while busy.
        var idleSince: UInt64?
        /// When its writes stalled, as a tick of `State.clock`; nil while its client reads.
        var stalledSince: UInt64?
    }

    private struct State {
        var served: [ObjectIdentifier: Entry] = [:]
        var refusing = 0
        var clock: UInt64 = 0
        var quiescing = false
        var unreported = Counts()
        var lastReport: ContinuousClock.Instant?
    }

    /// Connections closed or refused since the last warning.
    struct Counts: Equatable {
        var evicted = 0
        var refused = 0
        var dropped = 0
        var isEmpty: Bool { self == Counts() }
    }

    let maxServed: Int
    let maxRefusing: Int
    private let reportInterval: Duration
    private let logger: Logger
    private let state = Mutex(State())

    init(maxServed: Int, maxRefusing: Int, reportInterval: Duration = .seconds(10), logger: Logger) {
        precondition(maxServed > 0 && maxRefusing >= 0)
        self.maxServed = maxServed
        self.maxRefusing = maxRefusing
        self.reportInterval = reportInterval
        self.logger = logger
    }

    /// Decides for a new connection, evicting the longest-stalled, else the longest-idle one if that makes room. A served or refused
    /// connection leaves the registry when it closes.
    func admit(_ channel: any Channel) -> Admission {
        let id = ObjectIdentifier(channel)
        let (admission, evicted, report) = self.state.withLock { state -> (Admission, (any Channel)?, Counts?) in
            var evicted: (any Channel)?
            let admission: Admission
            if state.quiescing {
                admission = .drop
            } else if state.served.count < self.maxServed {
                admission = .serve
            } else if let victim = Self.evictionCandidate(state.served) {
                evicted = state.served.removeValue(forKey: victim)?.channel
                state.unreported.evicted += 1
                admission = .serve
            } else if state.refusing < self.maxRefusing {
                state.refusing += 1
                state.unreported.refused += 1
                admission = .refuse
            } else {
                state.unreported.dropped += 1
                admission = .drop
            }
            if admission == .serve {
                state.clock += 1
                state.served[id] = Entry(channel: channel, idleSince: state.clock)
            }
            return (admission, evicted, self.takeReport(&state))
        }
        evicted?.close(promise: nil)
        if let report { self.log(report) }
        switch admission {
        case .serve:
            channel.closeFuture.whenComplete { _ in
                self.state.withLock { state in _ = state.served.removeValue(forKey: id) }
            }
        case .refuse:
            channel.closeFuture.whenComplete { _ in
                self.state.withLock { state in state.refusing -= 1 }
            }
        case .drop:
            break
        }
        return admission
    }

    /// The connection to close for a newcomer: the one stalled on writing the longest, else the one idle the longest;
    /// nil when every connection is busy with a client that reads.
    private static func evictionCandidate(_ served: [ObjectIdentifier: Entry]) -> ObjectIdentifier? {
        var stalled: (key: ObjectIdentifier, since: UInt64)?
        var idle: (key: ObjectIdentifier, since: UInt64)?
        for (key, entry) in served {
            if let since = entry.stalledSince, since < stalled?.since ?? .max { stalled = (key, since) }
            if let since = entry.idleSince, since < idle?.since ?? .max { idle = (key, since) }
        }
        return stalled?.key ?? idle?.key
    }

    /// What `channel` wrote waits for its client to read (`stalled`), or the client read some of it.
    func markWriteStalled(_ channel: any Channel, _ stalled: Bool) {
        self.state.withLock { state in
            let id = ObjectIdentifier(channel)
            guard state.served[id] != nil else { return }
            if stalled {
                state.clock += 1
                state.served[id]?.stalledSince = state.clock
            } else {
                state.served[id]?.stalledSince = nil
            }
        }
    }

    /// A request started on `channel`: it is no longer a candidate for eviction.
    func markBusy(_ channel: any Channel) {
        self.state.withLock { state in
            state.served[ObjectIdentifier(channel)]?.idleSince = nil
        }
    }

    /// `channel` answered its request and waits for the next one: it may be evicted, the longest idle first.
    func markIdle(_ channel: any Channel) {
        self.state.withLock { state in
            let id = ObjectIdentifier(channel)
            guard state.served[id] != nil else { return }
            state.clock += 1
            state.served[id]?.idleSince = state.clock
        }
    }

    /// Stops admitting (every newcomer is dropped) and returns the connections being served.
    func beginQuiescing() -> [any Channel] {
        self.state.withLock { state in
            state.quiescing = true
            return state.served.values.map(\.channel)
        }
    }

    /// The connections being served now.
    var servedChannels: [any Channel] {
        self.state.withLock { state in state.served.values.map(\.channel) }
    }

    /// The counts to log now, if the last warning is at least `reportInterval` old; resets them.
    private func takeReport(_ state: inout State) -> Counts? {
        guard !state.unreported.isEmpty else { return nil }
        let now = ContinuousClock.now
        if let last = state.lastReport, last + self.reportInterval > now { return nil }
        state.lastReport = now
        defer { state.unreported = Counts() }
        return state.unreported
    }

    private func log(_ counts: Counts) {
        self.logger.warning(
            "HTTP connection limit reached: closed stalled or idle connections to make room, or refused new ones",
            metadata: [
                "max_connections": "\(self.maxServed)", "closed_to_make_room": "\(counts.evicted)",
                "refused_503": "\(counts.refused)", "dropped": "\(counts.dropped)",
                "interval_seconds": "\(self.reportInterval.components.seconds)",
            ])
    }
}

/// The file descriptors the server may use, and how many connections fit in them.
enum ConnectionBudget {
    /// Descriptors kept for everything else in the process (databases, broker connections, logs, listeners).
    static let reserved = 128

    /// Served and refused connection counts for `configured` served connections under a soft limit of
    /// `fileDescriptors` (nil when unknown): refusals get a sixteenth of the served count (at least 4), and both
    /// together stay under the limit minus ``reserved``.
    static func split(configured: Int, fileDescriptors: Int?) -> (served: Int, refusing: Int) {
        var served = max(1, configured)
        if let fileDescriptors {
            let usable = max(17, fileDescriptors - reserved)
            served = min(served, usable * 16 / 17)
        }
        var refusing = max(4, served / 16)
        if let fileDescriptors {
            refusing = max(1, min(refusing, max(17, fileDescriptors - reserved) - served))
        }
        return (served, refusing)
    }

    /// Raises the soft limit on open files to the hard limit when allowed, and returns the soft limit then in force
    /// (nil if it cannot be read).
    static func raiseFileDescriptorLimit() -> Int? {
        var limit = rlimit()
        #if canImport(Glibc)
            let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
            let resource = RLIMIT_NOFILE
        #endif
        guard getrlimit(resource, &limit) == 0 else { return nil }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(resource, &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur >= rlim_t(Int.max) ? Int.max : Int(limit.rlim_cur)
    }
}
