import BrokerTestSupport
import Common
import Foundation
import Testing
import TestSupport

/// The user service keeps its promise while the broker is away: 201s go on, the outbox holds the events,
/// and they flow once the broker is back.
@Suite(.serialized)
struct BrokerOutageTests {
    @Test func createsSucceedWhileTheBrokerIsDownAndArriveAfterwards() async throws {
        let broker = try await TestBroker.startPrivate()
        let system = try await RunningSystem.start("outage", broker: broker)
        defer {
            Task {
                await system.stopAll()
                try? await broker.stop()
            }
        }

        try await broker.stop()
        try await eventually("readiness reports the broker down") {
            let ready = try await system.request("GET", path: "/readyz")
            return ready.status == 503 && ready.json["broker"] as? String == "down"
        }
        let health = try await system.request("GET", path: "/healthz")
        #expect(health.status == 200)

        var ids: [String] = []
        for index in 0..<20 {
            let response = try await system.createUser(name: "Offline \(index)", email: "offline\(index)@example.com")
            #expect(response.status == 201)
            ids.append(response.json["id"] as? String ?? "")
        }
        let renamed = try await system.request("PATCH", path: "/users/\(ids[0])", json: ["name": "Offline renamed"])
        #expect(renamed.status == 200)
        let backlog = try await system.request("GET", path: "/readyz").json["outbox_backlog"] as? Int
        #expect(backlog == 21)

        let created = ids
        try await broker.start()
        try await system.waitUntilReady(timeout: .seconds(60))
        try await eventually(timeout: .seconds(60), "all events delivered after the outage\n\(system.logs())") {
            let snapshots = try system.snapshots()
            return created.allSatisfy { snapshots[$0] != nil } && snapshots[created[0]]?.version == 2
        }
        #expect(try system.snapshots()[ids[0]]?.name == "Offline renamed")
        // Marking rows sent is lazy (every 200 ms): the backlog drains shortly after delivery.
        try await eventually("outbox backlog back to 0") {
            try await system.request("GET", path: "/readyz").json["outbox_backlog"] as? Int == 0
        }
    }
}
