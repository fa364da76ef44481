import HTTPServer
import Glibc
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

    /// A client that reads, slowly, makes progress: its large response is not cut off by a short write timeout.
    @Test func aSlowReaderIsNotCutOff() async throws {
        var router = Router()
        let large = String(repeating: "y", count: 2 << 20)
        router.add(.GET, "/large") { _ in .text(large) }
        let configuration = HTTPServerConfiguration(host: "127.0.0.1", port: 0, writeTimeout: .seconds(1))
        try await withServer(configuration, router: router) { port in
            let socket = try SlowReader(port: port, receiveBuffer: 4_096)
            defer { socket.close() }
            try socket.send("GET /large HTTP/1.1\r\nHost: t\r\n\r\n")
            // 2 MiB at about 1 MiB/s with a 4 KiB receive buffer: two seconds, twice the write timeout.
            let received = try await socket.readAll(pause: .milliseconds(2), chunk: 2_048, until: large.utf8.count)
            #expect(received >= large.utf8.count, "the response was cut after \(received) bytes")
        }
    }
}

/// A blocking socket that reads a little at a time, pausing between reads.
private struct SlowReader {
    let descriptor: Int32

    init(port: Int, receiveBuffer: Int32) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var size = receiveBuffer
        setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw TestFailure("connect failed: errno \(errno)") }
    }

    func send(_ text: String) throws {
        let sent = Array(text.utf8).withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, 0) }
        guard sent > 0 else { throw TestFailure("send failed: errno \(errno)") }
    }

    /// Reads `chunk` bytes at a time with `pause` between reads until `until` body bytes (and the head) arrived or
    /// the peer closed; returns the body bytes received.
    func readAll(pause: Duration, chunk: Int, until: Int) async throws -> Int {
        var total = 0
        var buffer = [UInt8](repeating: 0, count: chunk)
        var headSeen = false
        var received: [UInt8] = []
        while total < until {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, chunk, 0) }
            if count <= 0 { break }
            if headSeen {
                total += count
            } else {
                received += buffer[0..<count]
                if let end = received.firstRange(of: Array("\r\n\r\n".utf8)) {
                    headSeen = true
                    total = received.count - end.upperBound
                }
            }
            try await Task.sleep(for: pause)
        }
        return total
    }

    func close() { _ = Glibc.close(descriptor) }
}
