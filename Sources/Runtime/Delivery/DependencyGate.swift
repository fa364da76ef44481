import Synchronization

/// Thrown by a delivery handler when something it needs is at fault, not the message: the database is full,
/// read-only, failing I/O or locked beyond its timeout.
///
/// The ``DeliveryLoop`` does not count it as an attempt: it keeps the delivery in hand (unacked), stops starting
/// new deliveries, reports `dependency` down with `reason` on `/readyz`, and retries that delivery now and then
/// until it goes through; then every delivery waiting goes on. Each service decides, from its store's error codes,
/// which failures are its dependency's.
public struct DependencyUnavailable: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is down, as named on `/readyz` (e.g. `database`).
    public var dependency: String
    /// Why, e.g. the database's error.
    public var reason: String

    /// Creates the error.
    public init(_ dependency: String, reason: String) {
        self.dependency = dependency
        self.reason = reason
    }

    /// `<dependency> unavailable: <reason>`.
    public var description: String { "\(dependency) unavailable: \(reason)" }
}

/// Closed while a dependency is unavailable: deliveries not yet started wait here, so that the loop takes no more
/// work than the prefetch already in hand, and go on together once a retry went through.
final class DependencyGate: Sendable {
    private struct State {
        var fault: DependencyUnavailable?
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }

    private let state = Mutex(State())

    /// The fault that closed the gate, nil while open.
    var fault: DependencyUnavailable? { state.withLock { $0.fault } }

    /// Closes the gate (or updates its reason); true when it was open.
    func close(_ fault: DependencyUnavailable) -> Bool {
        state.withLock { state in
            defer { state.fault = fault }
            return state.fault == nil
        }
    }

    /// Opens the gate and lets every waiter go; true when it was closed.
    func open() -> Bool {
        let (wasClosed, waiters) = state.withLock { state in
            defer {
                state.fault = nil
                state.waiters = [:]
            }
            return (state.fault != nil, Array(state.waiters.values))
        }
        for waiter in waiters { waiter.resume() }
        return wasClosed
    }

    /// Returns at once while open; else when the gate opens or the task is cancelled.
    func waitUntilOpen() async {
        let id = state.withLock { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let goNow = state.withLock { state in
                    guard state.fault != nil, !Task.isCancelled else { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if goNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}
