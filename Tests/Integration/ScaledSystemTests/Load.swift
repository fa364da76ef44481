import Foundation
import Synchronization
import TestSupport

/// A steady load of user life cycles (create, rename, change email, delete every other user) spread over several
/// user-service instances: each step of one user goes to the next instance in turn, so changes of one user cross
/// instances. A failed request (an instance killed, a broker node away) is counted and the worker moves on to a
/// new user.
final class Load: Sendable {
    private struct Counts {
        var requests = 0
        var successes = 0
        var failures = 0
        var created: Set<String> = []
    }
    private let counts = Mutex(Counts())
    private let stopped = Mutex(false)
    private let task = Mutex<Task<Void, Never>?>(nil)

    /// Starts `workers` workers against the user-service instances listening on `ports`.
    init(workers: Int, ports: [Int]) {
        let started = Task { [self] in
            await withTaskGroup(of: Void.self) { group in
                for worker in 0..<workers {
                    group.addTask { await self.lifeCycles(worker: worker, ports: ports) }
                }
            }
        }
        task.withLock { $0 = started }
    }

    /// Tells the workers to stop after their current request and waits for them.
    func stop() async {
        stopped.withLock { $0 = true }
        await task.withLock { $0 }?.value
    }

    /// Requests sent, answered 2xx, failed; users created with 201.
    var summary: (requests: Int, successes: Int, failures: Int, created: Set<String>) {
        counts.withLock { ($0.requests, $0.successes, $0.failures, $0.created) }
    }

    private func record(_ response: TestHTTPResponse?) {
        counts.withLock { counts in
            counts.requests += 1
            if let status = response?.status, (200..<300).contains(status) {
                counts.successes += 1
                if status == 201, let id = response?.json["id"] as? String { counts.created.insert(id) }
            } else {
                counts.failures += 1
            }
        }
    }

    private func lifeCycles(worker: Int, ports: [Int]) async {
        var index = 0
        while !stopped.withLock({ $0 }) {
            index += 1
            func port(_ step: Int) -> Int { ports[(worker + index + step) % ports.count] }
            let email = "w\(worker)-\(index)-\(UUID().uuidString.prefix(6))@example.com"
            let created = try? await httpRequest(
                "POST", port: port(0), path: "/users", json: ["name": "W\(worker) \(index)", "email": email])
            record(created)
            guard created?.status == 201, let id = created?.json["id"] as? String else {
                try? await Task.sleep(for: .milliseconds(100))  // pacing while an instance restarts
                continue
            }
            let renamed = try? await httpRequest(
                "PATCH", port: port(1), path: "/users/\(id)", json: ["name": "W\(worker) \(index) r"])
            record(renamed)
            let moved = try? await httpRequest("PATCH", port: port(2), path: "/users/\(id)", json: ["email": "m-" + email])
            record(moved)
            if index.isMultiple(of: 2) {
                record(try? await httpRequest("DELETE", port: port(3), path: "/users/\(id)"))
            }
        }
    }
}
