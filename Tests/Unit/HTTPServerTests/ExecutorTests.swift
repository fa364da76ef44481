import Foundation
import HTTPServer
import NIOHTTP1
import NIOPosix
import Testing

/// Where route handlers run: on the event loop of their connection, before and after an await that another thread
/// completes (as the database writer thread completes a write). No hop through the cooperative pool.
@Suite(.timeLimit(.minutes(1)))
struct ExecutorTests {
    @Test func handlerRunsOnTheConnectionsEventLoopAcrossAwaits() async throws {
        var router = Router()
        router.add(.GET, "/where") { _ in
            let before = MultiThreadedEventLoopGroup.currentEventLoop
            // Resumed from a thread of its own, like a job the database writer thread completes.
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                Thread { continuation.resume() }.start()
            }
            let after = MultiThreadedEventLoopGroup.currentEventLoop
            return .json([
                "before": before == nil ? "elsewhere" : "event loop",
                "after": after == nil ? "elsewhere" : "event loop",
                "same": before != nil && before === after ? "yes" : "no",
            ])
        }
        try await withServer(router: router) { port in
            // Several requests on one connection and on several: every one is served on its loop.
            for _ in 0..<3 {
                try await withConnection(port: port) { connection in
                    for _ in 0..<3 {
                        let response = try await connection.readResponseAfterSending(
                            "GET /where HTTP/1.1\r\nHost: t\r\n\r\n")
                        let body = try JSONDecoder().decode([String: String].self, from: Data(response.body.utf8))
                        #expect(body == ["before": "event loop", "after": "event loop", "same": "yes"])
                    }
                }
            }
        }
    }
}
