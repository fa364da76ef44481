import HTTPServer
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing
import TestSupport

/// Clients that pipeline requests and never read what they asked for: their connections stall on writing. They must
/// neither hold the server's connection slots nor keep their own sockets for ever.
@Suite(.timeLimit(.minutes(1)))
struct WriteStallTests {
    /// A route with a response large enough to fill socket buffers quickly (like `GET /openapi.json`).
    private static func router() -> Router {
        var router = Router()
        let document = String(repeating: "x", count: 20_000)
        router.add(.GET, "/document") { _ in .text(document) }
        router.add(.GET, "/healthz") { _ in .json(["status": "ok"]) }
        return router
    }

    /// Opens `count` connections with a small receive buffer that never read, each pipelining `requests` requests
    /// for the large document; the caller closes them.
    private static func stallingClients(_ count: Int, requests: Int, port: Int) async throws -> [any Channel] {
        var channels: [any Channel] = []
        let pipelined = String(repeating: "GET /document HTTP/1.1\r\nHost: t\r\n\r\n", count: requests)
        do {
            for _ in 0..<count {
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .channelOption(.autoRead, value: false)
                    .channelOption(.socketOption(.so_rcvbuf), value: 2_048)
                    .connect(host: "127.0.0.1", port: port).get()
                channels.append(channel)
                try await channel.writeAndFlush(channel.allocator.buffer(string: pipelined)).get()
            }
        } catch {
            for channel in channels { channel.close(promise: nil) }
            throw error
        }
        return channels
    }

    @Test func clientsThatNeverReadDoNotLockOutAHealthCheckOrANewClient() async throws {
        // Every slot taken by a client that pipelines and never reads, and more of them waiting.
        let configuration = HTTPServerConfiguration(host: "127.0.0.1", port: 0, maxConnections: 40, writeTimeout: .seconds(60))
        try await withServer(configuration, router: Self.router()) { port in
            let stalled = try await Self.stallingClients(45, requests: 400, port: port)
            defer { for channel in stalled { channel.close(promise: nil) } }
            // Answered at once (well inside the write timeout), by evicting a stalled connection.
            for path in ["/healthz", "/document"] {
                let started = ContinuousClock.now
                let response = try await request(port: port, "GET \(path) HTTP/1.1\r\nHost: t\r\n\r\n")
                #expect(response.status == 200, "\(path): \(response.status) \(response.body.prefix(200))")
                #expect(ContinuousClock.now - started < .seconds(10))
            }
        }
    }

    @Test func aConnectionThatMakesNoWriteProgressIsClosedAfterTheWriteTimeout() async throws {
        let logs = LogCapture()
        let configuration = HTTPServerConfiguration(host: "127.0.0.1", port: 0, writeTimeout: .seconds(1))
        try await withServer(configuration, router: Self.router(), logger: logs.logger) { port in
            let stalled = try await Self.stallingClients(1, requests: 400, port: port)
            defer { for channel in stalled { channel.close(promise: nil) } }
            try await eventually(timeout: .seconds(20), "the stalled connection is closed") {
                logs.lines.contains { $0.message.contains("no write progress") }
            }
            // Served again by a client that reads.
            let response = try await request(port: port, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(response.status == 200)
        }
    }
}
