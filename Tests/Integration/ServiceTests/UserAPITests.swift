import BrokerTestSupport
import Common
import EventCodec
import Foundation
import HTTPServer
import Logging
import Messaging
import NIOHTTP1
import ServiceRuntime
import SQLiteStorage
import Synchronization
import TestSupport
import ServiceKit
import Testing

@testable import UserService

/// The user service in process, over real HTTP, with a real broker (its own virtual host) and a real database: for
/// what reaches the broker. The routes alone are tested without a broker (`UserAPIRouteTests`).
final class UserServiceUnderTest: LocalHTTPService {
    let port: Int
    let brokerURL: String
    /// The service's database file, for tests that look at what it stored.
    let databasePath: String
    private let running: InProcessService

    private init(port: Int, brokerURL: String, databasePath: String, running: InProcessService) {
        self.port = port
        self.brokerURL = brokerURL
        self.databasePath = databasePath
        self.running = running
    }

    static func start() async throws -> UserServiceUnderTest {
        let broker = try await TestBroker.shared()
        let url = try await broker.makeVirtualHost("user-api")
        let directory = try temporaryDirectory("user-api")
        let http = HTTPServerConfiguration(host: "127.0.0.1", port: 0)
        let databasePath = "\(directory)/users.sqlite"
        let app = try UserServiceApp(
            configuration: UserServiceConfiguration(
                http: http, databasePath: databasePath, broker: try BrokerConfiguration(url: url)),
            logger: Logger(label: "user-api-test"))
        let running = InProcessService(app.services.inStartOrder)
        let port = try await app.listeningPort()
        let service = UserServiceUnderTest(port: port, brokerURL: url, databasePath: databasePath, running: running)
        return service
    }

    func stop() async { await running.stop() }

}

@Suite(.serialized)
struct UserAPITests {
    @Test func patchAndDeleteFollowVersionsAndPreconditions() async throws {
        let service = try await UserServiceUnderTest.start()
        let created = try await service.create("Dave", "dave@example.com")
        let id = created.json["id"] as? String ?? ""
        _ = try await service.create("Erin", "erin@example.com")

        let renamed = try await service.call("PATCH", "/users/\(id)", json: ["name": "David"])
        #expect(renamed.status == 200)
        #expect(renamed.json["version"] as? Int == 2)
        #expect(renamed.json["name"] as? String == "David")
        #expect(renamed.headers["etag"] == "\"2\"")
        let stale = try await service.call(
            "PATCH", "/users/\(id)", json: ["name": "Dave"], headers: ["If-Match": "\"1\""])
        #expect(stale.status == 412)
        let current = try await service.call(
            "PATCH", "/users/\(id)", json: ["email": "david@example.com"], headers: ["If-Match": "\"2\""])
        #expect(current.status == 200)
        #expect(current.json["version"] as? Int == 3)
        let empty = try await service.call("PATCH", "/users/\(id)", json: [String: Any]())
        #expect(empty.status == 422)
        let badName = try await service.call("PATCH", "/users/\(id)", json: ["name": "   "])
        #expect(badName.status == 422)
        let nullEmail = try await service.call("PATCH", "/users/\(id)", json: ["name": "Dave", "email": NSNull()])
        #expect(nullEmail.status == 422)
        #expect((nullEmail.json["detail"] as? String ?? "").hasPrefix("email"))
        let taken = try await service.call("PATCH", "/users/\(id)", json: ["email": "Erin@example.com"])
        #expect(taken.status == 409)
        let missing = try await service.call("PATCH", "/users/nobody", json: ["name": "X"])
        #expect(missing.status == 404)
        let text = try await service.call(
            "PATCH", "/users/\(id)", body: Data("name=x".utf8), headers: ["Content-Type": "text/plain"])
        #expect(text.status == 415)

        let wrongVersion = try await service.call("DELETE", "/users/\(id)", headers: ["If-Match": "\"2\""])
        #expect(wrongVersion.status == 412)
        let deleted = try await service.call("DELETE", "/users/\(id)", headers: ["If-Match": "\"3\""])
        #expect(deleted.status == 204)
        let again = try await service.call("DELETE", "/users/\(id)")
        #expect(again.status == 404)
        let gone = try await service.call("GET", "/users/\(id)")
        #expect(gone.status == 404)

        // Every change published its event, in order, with the version it produced.
        let consumer = EventTap(url: service.brokerURL)
        let events = try await consumer.take(5)
        let mine = events.filter { $0.userID == id }
        #expect(mine.map(\.kind) == [.created, .updated, .updated, .deleted])
        #expect(mine.map(\.version) == [1, 2, 3, 4])
        #expect(mine[2].email == "david@example.com" && mine[2].name == "David")
        await service.stop()
    }

    /// Limits count bytes, for every text the API takes: body fields, stored headers, path ids, query values.
}

/// Reads user events from `queue_dispatch` of a virtual host.
struct EventTap {
    let url: String

    func take(_ count: Int, timeout: Duration = .seconds(15)) async throws -> [UserEvent] {
        try await takeMessages(count, from: QueueName.dispatch, brokerURL: url, timeout: timeout).map {
            try UserEvent.decode(body: $0.body, messageID: $0.properties.messageID)
        }
    }
}
