import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where async callers and a connection's thread meet: callers leave commands (and the continuations that wait for
/// their answers) and wake the thread through a pipe; the thread takes the commands in order, and resumes the
/// waiting callers when the state machine says so. Nothing here touches rabbitmq-c.
final class ConnectionMailbox<RoleCommand: Sendable>: Sendable {
    /// A caller waiting for the answer of its request, typed by the kind of request.
    private enum Waiter {
        /// Publish or declare: done, or failed.
        case completion(CheckedContinuation<Void, any Error>)
        /// Count: the number of messages ready in a queue, or failed.
        case messageCount(CheckedContinuation<Int, any Error>)

        func fail(_ error: any Error) {
            switch self {
            case .completion(let continuation): continuation.resume(throwing: error)
            case .messageCount(let continuation): continuation.resume(throwing: error)
            }
        }
    }

    private struct Entry {
        var command: ConnectionCommand<RoleCommand>
        /// The waiting caller's request, for commands that have one.
        var requestID: UInt64?
        /// Why the request fails if shutdown comes before the thread took it.
        var closedDetail = ""
    }

    private struct State {
        var started = false
        var shutdownRequested = false
        /// The thread has finished: commands are refused and nobody will answer.
        var finished = false
        /// A wake-up byte is in the pipe (or about to be) that the thread has not yet acted on.
        var wakePending = false
        var nextRequestID: UInt64 = 0
        var entries = FIFO<Entry>()
        /// Callers waiting for an answer, by request id.
        var waiters: [UInt64: Waiter] = [:]

        /// Returns whether the caller must write to the wake-up pipe (no wake-up is outstanding yet).
        mutating func markWakePending() -> Bool {
            defer { wakePending = true }
            return !wakePending
        }
    }

    private let state = Mutex(State())
    private let connected = Atomic<Bool>(false)
    private let blocked = Atomic<Bool>(false)
    private let agreedFrameMax = Atomic<Int>(AMQPLimits.frameMax)
    /// The open connection's socket, so that a deadline can cut a call that blocks on it. The thread clears it
    /// (under this lock) before it closes the descriptor, so a cut never reaches a descriptor number reused since.
    private let socket = Mutex<Int32?>(nil)
    /// Whether the shutdown deadline has been armed.
    private let deadlineArmed = Atomic<Bool>(false)
    /// Written by callers so that the thread's `poll()` returns.
    let wakeup = Wakeup()

    // MARK: - Callers

    /// Whether the connection is up and serving, as the thread last reported.
    var isConnected: Bool { connected.load(ordering: .acquiring) }

    /// Whether the broker blocks the connection (`connection.blocked`), as the thread last reported.
    var isBlocked: Bool { blocked.load(ordering: .acquiring) }

    /// The frame size the broker agreed to on the last connection opened (``AMQPLimits/frameMax`` before the first).
    var frameMax: Int { agreedFrameMax.load(ordering: .acquiring) }

    /// Once, at the first shutdown request: after `timeout`, shuts the socket down if the thread still has one, so
    /// that a call blocked on it (a send the broker does not read, a handshake it does not answer) fails and the
    /// thread can finish.
    func armShutdownDeadline(_ timeout: Duration) {
        guard !deadlineArmed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        Task.detached { [self] in
            try? await Task.sleep(for: timeout)
            cutSocket()
        }
    }

    private func cutSocket() {
        socket.withLock { descriptor in
            if let descriptor { _ = shutdown(descriptor, Int32(SHUT_RDWR)) }
        }
    }

    /// Records that `run()` started; returns false if it had started before.
    func markStarted() -> Bool {
        state.withLock { state in
            defer { state.started = true }
            return !state.started
        }
    }

    /// Leaves the command made by `command` (given the request id) and waits until the thread completes it. Throws
    /// `MessagingError.closed` with `closedDetail` once shutdown was requested. If `cancellable`, cancelling the
    /// calling task withdraws the request while the thread has not started it.
    func request(
        cancellable: Bool, closedDetail: String, _ command: (UInt64) -> ConnectionCommand<RoleCommand>
    ) async throws {
        try await enqueue(cancellable: cancellable, closedDetail: closedDetail, command, Waiter.completion)
    }

    /// Leaves the count command made by `command` and waits for the number the thread answers.
    func requestCount(
        closedDetail: String, _ command: (UInt64) -> ConnectionCommand<RoleCommand>
    ) async throws -> Int {
        try await enqueue(cancellable: false, closedDetail: closedDetail, command, Waiter.messageCount)
    }

    private func enqueue<Answer: Sendable>(
        cancellable: Bool, closedDetail: String, _ command: (UInt64) -> ConnectionCommand<RoleCommand>,
        _ waiter: @escaping (CheckedContinuation<Answer, any Error>) -> Waiter
    ) async throws -> Answer {
        let id = state.withLock { state in
            state.nextRequestID += 1
            return state.nextRequestID
        }
        let entry = Entry(command: command(id), requestID: id, closedDetail: closedDetail)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Answer, any Error>) in
                let wake: Bool? = state.withLock { state in
                    guard !state.shutdownRequested else { return nil }
                    state.waiters[id] = waiter(continuation)
                    state.entries.append(entry)
                    return state.markWakePending()
                }
                guard let wake else {
                    continuation.resume(throwing: MessagingError(.closed, closedDetail))
                    return
                }
                if wake { wakeup.signal() }
                // A task cancelled before the request was left ran its cancellation handler too early.
                if cancellable && Task.isCancelled { cancel(id) }
            }
        } onCancel: {
            if cancellable { cancel(id) }
        }
    }

    /// Leaves a command that nobody waits for (a settlement). Dropped once the thread has finished.
    func post(_ command: ConnectionCommand<RoleCommand>) {
        let wake: Bool? = state.withLock { state in
            guard !state.finished else { return nil }
            state.entries.append(Entry(command: command, requestID: nil))
            return state.markWakePending()
        }
        if wake == true { wakeup.signal() }
    }

    /// Asks the thread to flush and close. Requests the thread has not taken yet fail with `.closed` at once;
    /// commands without a waiter (settlements) are still handed over.
    func requestShutdown() {
        let (refused, wake) = state.withLock { state in
            state.shutdownRequested = true
            let refused = state.entries.removeAll { $0.requestID != nil }.compactMap { entry in
                entry.requestID.flatMap { state.waiters.removeValue(forKey: $0) }.map { ($0, entry.closedDetail) }
            }
            return (refused, state.markWakePending())
        }
        for (waiter, detail) in refused {
            waiter.fail(MessagingError(.closed, detail))
        }
        if wake { wakeup.signal() }
    }

    /// Withdraws request `id`: at once if the thread has not taken it, else through the state machine, which
    /// withdraws it only if it has not started.
    private func cancel(_ id: UInt64) {
        let (withdrawn, wake): (Waiter?, Bool) = state.withLock { state in
            if state.entries.remove(where: { $0.requestID == id }) != nil {
                return (state.waiters.removeValue(forKey: id), false)
            }
            guard state.waiters[id] != nil, !state.finished else { return (nil, false) }
            state.entries.append(Entry(command: .cancel(requestID: id), requestID: nil))
            return (nil, state.markWakePending())
        }
        withdrawn?.fail(CancellationError())
        if wake { wakeup.signal() }
    }

    // MARK: - The connection thread

    /// Takes the commands left so far, in order, and whether shutdown was requested; re-arms the wake-up pipe.
    func take() -> (commands: [ConnectionCommand<RoleCommand>], shutdownRequested: Bool) {
        state.withLock { state in
            state.wakePending = false
            return (state.entries.removeAll().map(\.command), state.shutdownRequested)
        }
    }

    /// Completes request `id`, a publish or a declare (once; later answers are ignored).
    func complete(_ id: UInt64) {
        switch state.withLock({ $0.waiters.removeValue(forKey: id) }) {
        case .completion(let continuation): continuation.resume()
        case .messageCount: preconditionFailure("request \(id) asks for a count, not a completion")
        case nil: break
        }
    }

    /// Answers count request `id` with the number of messages ready (once; later answers are ignored).
    func answerCount(_ id: UInt64, _ count: Int) {
        switch state.withLock({ $0.waiters.removeValue(forKey: id) }) {
        case .messageCount(let continuation): continuation.resume(returning: count)
        case .completion: preconditionFailure("request \(id) asks for a completion, not a count")
        case nil: break
        }
    }

    /// Fails request `id`, of any kind, with `error` (once; later answers are ignored).
    func fail(_ id: UInt64, _ error: any Error) {
        state.withLock { $0.waiters.removeValue(forKey: id) }?.fail(error)
    }

    /// Publishes whether the connection is up and serving.
    func setConnected(_ isConnected: Bool) {
        connected.store(isConnected, ordering: .releasing)
    }

    /// Publishes the frame size agreed on a new connection.
    func setFrameMax(_ frameMax: Int) {
        agreedFrameMax.store(frameMax, ordering: .releasing)
    }

    /// Publishes whether the broker blocks the connection.
    func setBlocked(_ isBlocked: Bool) {
        blocked.store(isBlocked, ordering: .releasing)
    }

    /// Records the socket of a new connection.
    func registerSocket(_ descriptor: Int32) {
        socket.withLock { $0 = descriptor }
    }

    /// Runs `close` (which closes the socket) with the socket unregistered, so no deadline cuts it meanwhile.
    func unregisterSocket(while close: () -> Void) {
        socket.withLock { descriptor in
            descriptor = nil
            close()
        }
    }

    /// The thread is done: refuses further commands and fails any caller still waiting (none, if the state machine
    /// answered everything).
    func finish() {
        let waiting = state.withLock { state in
            state.finished = true
            state.shutdownRequested = true
            _ = state.entries.removeAll()
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        connected.store(false, ordering: .releasing)
        for waiter in waiting {
            waiter.fail(MessagingError(.closed, "the connection has stopped"))
        }
    }
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

    /// Sleeps in `poll()` until `socket` (if any) is readable, a caller signals, or `timeout` passes.
    func wait(socket: Int32?, timeout: Duration) {
        var descriptors = [pollfd(fd: readDescriptor, events: Int16(POLLIN), revents: 0)]
        if let socket { descriptors.append(pollfd(fd: socket, events: Int16(POLLIN), revents: 0)) }
        let (seconds, attoseconds) = max(timeout, .zero).components
        let milliseconds = Int32(clamping: seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
        let result = poll(&descriptors, nfds_t(descriptors.count), milliseconds)
        if result > 0 && descriptors[0].revents != 0 { drain() }
    }
}
