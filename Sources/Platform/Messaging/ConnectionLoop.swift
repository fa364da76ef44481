import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// The life cycle of one ``ConnectionLoop``, changed only through ``transition(to:)``, which refuses invalid moves.
enum ConnectionState: Equatable, Sendable {
    /// Created; `run()` not called yet.
    case idle
    /// Opening socket, logging in, declaring.
    case connecting
    /// Serving commands and frames.
    case connected
    /// Waiting before the next connection attempt.
    case backingOff
    /// Shutdown requested: flushing and closing the connection.
    case closing
    /// The thread has finished; nothing more happens.
    case closed

    mutating func transition(to next: ConnectionState) {
        switch (self, next) {
        case (.idle, .connecting), (.backingOff, .connecting),
            (.connecting, .connected), (.connecting, .backingOff), (.connected, .backingOff),
            (.idle, .closing), (.connecting, .closing), (.connected, .closing), (.backingOff, .closing),
            (.closing, .closed):
            self = next
        default:
            preconditionFailure("invalid connection state transition \(self) -> \(next)")
        }
    }
}

/// A publish call waiting for its messages to be confirmed.
struct PublishRequest: Sendable {
    var id: UInt64
    var messages: [OutboundMessage]
    var continuation: CheckedContinuation<Void, any Error>
}

/// A request to declare more queues on the live connection (and on every reconnect after it).
struct DeclareRequest: Sendable {
    var queues: [String]
    var continuation: CheckedContinuation<Void, any Error>
}

/// Settlement of a consumed message, handed to the connection thread.
enum Settlement: Sendable {
    case ack(multiple: Bool)
    case reject(requeue: Bool)
}

/// Runs one AMQP connection on a dedicated thread that owns it, reconnecting with backoff.
///
/// Async callers never touch rabbitmq-c: they put commands into ``Shared`` (behind a `Mutex`) and wake the thread
/// through a pipe; the thread waits in `poll()` on the pipe and the AMQP socket, so an idle connection costs no CPU.
/// Publisher and Consumer differ only in their ``Role``.
final class ConnectionLoop: Sendable {
    enum Role: Sendable {
        case publisher(confirmWindow: Int)
        case consumer(queue: String, prefetch: UInt16, deliveries: AsyncStream<Delivery>.Continuation)

        var name: String {
            switch self {
            case .publisher: "publisher"
            case .consumer: "consumer"
            }
        }
    }

    struct Shared {
        var state = ConnectionState.idle
        var started = false
        var shutdownRequested = false
        /// A wake-up byte is in the pipe (or about to be) that the thread has not yet acted on.
        var wakePending = false
        var nextPublishID: UInt64 = 0
        var publishes = FIFO<PublishRequest>()
        /// Queues added by ``ConnectionLoop/declare(_:)``, declared on every connect after the initial ones.
        var addedQueues: [String] = []
        var declarations: [DeclareRequest] = []
        var settlements: [(tag: UInt64, generation: UInt64, settlement: Settlement)] = []
        var exit: CheckedContinuation<Void, Never>?
    }

    /// What the thread takes from ``Shared`` on each turn of its loop.
    struct Work {
        var settlements: [(tag: UInt64, generation: UInt64, settlement: Settlement)]
        var shutdownRequested: Bool
    }

    let configuration: BrokerConfiguration
    let role: Role
    let declaredQueues: [String]
    let logger: Logger
    /// `amqp_reconnects_total{role}`: connections made again after one was lost.
    let reconnects: Counter
    private let shared = Mutex(Shared())
    let wakeup: Wakeup

    init(configuration: BrokerConfiguration, role: Role, declaring queues: [String], logger: Logger) {
        self.configuration = configuration
        self.role = role
        var unique: [String] = []
        for queue in queues where !unique.contains(queue) { unique.append(queue) }
        declaredQueues = unique
        var logger = logger
        logger[metadataKey: "amqp.role"] = "\(role.name)"
        if !configuration.connectionName.isEmpty {
            logger[metadataKey: "amqp.connection"] = "\(configuration.connectionName)"
        }
        self.logger = logger
        reconnects = Counter(label: "amqp_reconnects_total", dimensions: [("role", role.name)])
        wakeup = Wakeup()
    }

    var isConnected: Bool { shared.withLock { $0.state == .connected } }

    /// Starts the connection thread and returns when it has closed (after cancellation or graceful shutdown).
    func run() async throws {
        let alreadyStarted = shared.withLock { state in
            defer { state.started = true }
            return state.started
        }
        if alreadyStarted { throw MessagingError(.closed, "run() may be called only once") }
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await withCheckedContinuation { (exit: CheckedContinuation<Void, Never>) in
                    shared.withLock { $0.exit = exit }
                    let thread = Thread { [self] in
                        nameCurrentThread("amqp-\(role.name)")
                        ConnectionWorker(loop: self).main()
                    }
                    thread.start()
                }
            } onCancel: {
                requestShutdown()
            }
        } onGracefulShutdown: {
            self.requestShutdown()
        }
    }

    /// Asks the thread to flush and close. Publishes that have not been handed to the thread fail with `.closed`.
    func requestShutdown() {
        let (queued, declarations, wake) = shared.withLock { state in
            state.shutdownRequested = true
            var queued: [PublishRequest] = []
            while let request = state.publishes.popFirst() { queued.append(request) }
            defer { state.declarations.removeAll() }
            return (queued, state.declarations, state.markWakePending())
        }
        for request in queued {
            request.continuation.resume(throwing: MessagingError(.closed, "the publisher is shutting down"))
        }
        for request in declarations {
            request.continuation.resume(throwing: MessagingError(.closed, "the connection is shutting down"))
        }
        if wake { wakeup.signal() }
    }

    // MARK: - Called by async callers

    func publish(_ messages: [OutboundMessage]) async throws {
        let id = shared.withLock { state in
            state.nextPublishID += 1
            return state.nextPublishID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let wake: Bool? = shared.withLock { state in
                    guard !state.shutdownRequested else { return nil }
                    state.publishes.append(PublishRequest(id: id, messages: messages, continuation: continuation))
                    return state.markWakePending()
                }
                guard let wake else {
                    continuation.resume(throwing: MessagingError(.closed, "the publisher has stopped"))
                    return
                }
                if wake { wakeup.signal() }
                if Task.isCancelled { cancelPublish(id) }
            }
        } onCancel: {
            cancelPublish(id)
        }
    }

    /// Declares more queues (durable, no arguments) now and on every reconnect; returns once the broker declared
    /// them on a live connection.
    func declare(_ queues: [String]) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let wake: Bool? = shared.withLock { state in
                guard !state.shutdownRequested else { return nil }
                for queue in queues where !declaredQueues.contains(queue) && !state.addedQueues.contains(queue) {
                    state.addedQueues.append(queue)
                }
                state.declarations.append(DeclareRequest(queues: queues, continuation: continuation))
                return state.markWakePending()
            }
            guard let wake else {
                continuation.resume(throwing: MessagingError(.closed, "the connection has stopped"))
                return
            }
            if wake { wakeup.signal() }
        }
    }

    /// Every queue to declare on connect: the initial ones, then those added since.
    var queuesToDeclare: [String] { declaredQueues + shared.withLock { $0.addedQueues } }

    /// Declaration requests waiting for the live connection.
    func takeDeclarations() -> [DeclareRequest] {
        shared.withLock { state in
            defer { state.declarations.removeAll() }
            return state.declarations
        }
    }

    /// Withdraws a publish that the thread has not started sending; once sending began it runs to its end.
    private func cancelPublish(_ id: UInt64) {
        let request = shared.withLock { state in state.publishes.remove { $0.id == id } }
        request?.continuation.resume(throwing: CancellationError())
    }

    func settle(_ delivery: Delivery, _ settlement: Settlement) {
        let wake: Bool? = shared.withLock { state in
            guard state.state != .closed else { return nil }
            state.settlements.append((delivery.deliveryTag, delivery.generation, settlement))
            return state.markWakePending()
        }
        if wake == true { wakeup.signal() }
    }

    // MARK: - Called by the connection thread

    func transition(to next: ConnectionState) {
        shared.withLock { $0.state.transition(to: next) }
    }

    /// Takes pending settlements and the shutdown flag, and re-arms the wake-up pipe.
    func takeWork() -> Work {
        shared.withLock { state in
            state.wakePending = false
            defer { state.settlements.removeAll(keepingCapacity: true) }
            return Work(settlements: state.settlements, shutdownRequested: state.shutdownRequested)
        }
    }

    /// The oldest waiting publish, if the thread may start sending it.
    func takePublish() -> PublishRequest? {
        shared.withLock { state in state.shutdownRequested ? nil : state.publishes.popFirst() }
    }

    /// Marks the loop closed and resumes `run()`.
    func finish() {
        let exit = shared.withLock { state in
            state.state.transition(to: .closed)
            defer { state.exit = nil }
            return state.exit
        }
        exit?.resume()
    }
}

extension ConnectionLoop.Shared {
    /// Returns whether the caller must write to the wake-up pipe (no wake-up is outstanding yet).
    fileprivate mutating func markWakePending() -> Bool {
        defer { wakePending = true }
        return !wakePending
    }
}

/// Names the calling OS thread (shown by `top -H`, `ps -L` and debuggers). Foundation's `Thread.name` does not on
/// Linux, and `pthread_setname_np` is not visible to Swift there, so this writes `/proc/thread-self/comm`.
private func nameCurrentThread(_ name: String) {
    let descriptor = open("/proc/thread-self/comm", O_WRONLY)
    guard descriptor >= 0 else { return }
    defer { close(descriptor) }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
}

/// A non-blocking pipe that async callers write to so that the connection thread's `poll()` returns.
final class Wakeup: Sendable {
    let readDescriptor: Int32
    private let writeDescriptor: Int32

    init() {
        var descriptors: [Int32] = [-1, -1]
        guard pipe(&descriptors) == 0 else { fatalError("pipe() failed: errno \(errno)") }
        for descriptor in descriptors {
            _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        }
        readDescriptor = descriptors[0]
        writeDescriptor = descriptors[1]
    }

    deinit {
        close(readDescriptor)
        close(writeDescriptor)
    }

    func signal() {
        var byte: UInt8 = 1
        _ = write(writeDescriptor, &byte, 1)  // EAGAIN: the pipe is full, so it is readable anyway
    }

    func drain() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(readDescriptor, &buffer, buffer.count) > 0 {}
    }
}
