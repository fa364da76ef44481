import Foundation
import Testing
import TestSupport

/// A user's whole life, through the HTTP API, for many users at once, checked on the order service's read API.
@Suite(.serialized)
struct LifecycleTests {
    @Test func concurrentLifeCyclesEndInTheFinalState() async throws {
        let system = try await RunningSystem.start("lifecycle")
        try await withCleanup({ await system.stopAll() }) {
            let users = 100
            let finals = try await withThrowingTaskGroup(of: (String, Bool, String, String).self) { group in
                for index in 0..<users {
                    group.addTask {
                        let created = try await system.createUser(name: "Life \(index)", email: "life\(index)@example.com")
                        try #require(created.status == 201)
                        let id = try #require(created.json["id"] as? String)
                        let renamed = try await system.request(
                            "PATCH", path: "/users/\(id)", json: ["name": "Life \(index) renamed"],
                            headers: ["If-Match": "\"1\""])
                        try #require(renamed.status == 200, "PATCH answered \(renamed.status)")
                        let moved = try await system.request(
                            "PATCH", path: "/users/\(id)", json: ["email": "moved\(index)@example.com"],
                            headers: ["If-Match": "\"2\""])
                        try #require(moved.status == 200, "PATCH answered \(moved.status)")
                        // Half of them are deleted at the end.
                        let deleted = index % 2 == 0
                        if deleted {
                            let response = try await system.request("DELETE", path: "/users/\(id)", headers: ["If-Match": "\"3\""])
                            try #require(response.status == 204)
                        }
                        return (id, deleted, "Life \(index) renamed", "moved\(index)@example.com")
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }

            for (id, deleted, name, email) in finals {
                let path = "/snapshots/users/\(id)"
                try await eventually(timeout: .seconds(30), "user \(id) in its final state\n\(system.logs())") {
                    let response = try await system.request("GET", port: system.orderPort, path: path)
                    return deleted
                        ? response.status == 410 && response.headers["etag"] == "\"4\""
                        : response.json["version"] as? Int == 3
                }
                if !deleted {
                    let snapshot = try await system.request("GET", port: system.orderPort, path: path)
                    #expect(snapshot.json["name"] as? String == name)
                    #expect(snapshot.json["email"] as? String == email)
                }
            }
            let listed = try await system.request("GET", port: system.orderPort, path: "/snapshots/users?limit=500")
            #expect((listed.json["items"] as? [Any])?.count == users / 2)
        }
    }
}
