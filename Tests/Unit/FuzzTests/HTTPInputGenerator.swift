import Foundation

/// HTTP/1.1 request streams as clients, proxies and attackers write them: pipelined requests with every method,
/// target, version and header the parser may meet, bodies by `Content-Length` or chunked, smuggling attempts,
/// oversized parts, and plain garbage.
enum HTTPInputGenerator {
    /// The limits the fuzzed server is configured with (small, so that inputs reach them cheaply).
    static let maxBodySize = 1_024
    static let maxHeaderSize = 1_024

    /// Bytes that matter to an HTTP parser.
    static let interestingBytes: [UInt8] = Array(" :/\r\n\t?#%&=;,\"0123456789abcdefHTP./-".utf8) + [0x00, 0x7F, 0x80, 0xFF]

    /// One request of a stream and whether it is well-formed (so that it must be answered).
    struct Request {
        var bytes: [UInt8]
        /// True when the server must answer it (with any status) if it reads it: well-formed HTTP/1.x.
        var wellFormed: Bool
        /// True when it asks the server to close after answering.
        var closes: Bool
    }

    /// A stream of one to four requests; `wellFormed: true` for a stream every request of which must be answered.
    static func requests(_ random: inout FuzzRandom, wellFormed: Bool, allowHEAD: Bool = true) -> [Request] {
        (0..<random.int(1...4)).map { _ in
            wellFormed || random.chance(0.5)
                ? validRequest(&random, allowHEAD: allowHEAD) : hostileRequest(&random, allowHEAD: allowHEAD)
        }
    }

    /// A well-formed request for one of the fuzz router's routes (or none), any status may answer it.
    static func validRequest(_ random: inout FuzzRandom, allowHEAD: Bool) -> Request {
        let methods = ["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT"] + (allowHEAD ? ["HEAD"] : [])
        let method = random.pick(methods)
        let target = random.pick([
            "/users/42", "/users/a%20b?q=x+y&q=last%21", "/users/%E2%82%AC", "/users", "/users/", "//users//7//",
            "/users/me/extra", "/close", "/fail", "/teapot", "/big", "/empty", "/", "/nope?x=%zz", "/users/%zz",
            "/users/a%2Fb", "/users/1#fragment", "/users/1?", "/users/1?&&=&a", "/%00", "/users/" + String(repeating: "x", count: 900),
        ])
        var headers = ["Host: fuzz"]
        var body: [UInt8] = []
        if ["POST", "PUT", "PATCH"].contains(method) || random.chance(0.1) {
            body = Array(random.pick([
                #"{"name":"Alice","email":"a@example.com"}"#, #"{"name":1}"#, "{", "", "null", "[]", #"{"name":"é"}"#,
                String(repeating: "x", count: 1_000),
            ]).utf8)
            headers.append(random.pick(["Content-Type: application/json", "Content-Type: text/plain",
                "content-type: Application/JSON; charset=utf-8", "Content-Type:"]))
            if random.chance(0.3) {
                headers.append("Transfer-Encoding: chunked")
                body = chunked(body, &random)
            } else {
                headers.append("Content-Length: \(body.count)")
            }
        }
        let closes = random.chance(0.2)
        if closes { headers.append("Connection: close") }
        if random.chance(0.1) { headers.append("Expect: 100-continue") }
        if random.chance(0.1) { headers.append("X-Padding: " + String(repeating: "p", count: random.int(0...300))) }
        let version = random.chance(0.9) ? "HTTP/1.1" : "HTTP/1.0"
        let head = "\(method) \(target) \(version)\r\n" + headers.shuffled(using: &random).joined(separator: "\r\n")
        return Request(bytes: Array((head + "\r\n\r\n").utf8) + body, wellFormed: true, closes: closes || version == "HTTP/1.0")
    }

    /// A request that breaks a rule or a limit somewhere: the server may answer it with an error or close.
    static func hostileRequest(_ random: inout FuzzRandom, allowHEAD: Bool) -> Request {
        let method = random.pick(["GET", "POST", "get", "G ET", "CONNECT", "PRI", "XYZZY", "", "GET\0", "\u{7F}"]
            + (allowHEAD ? ["HEAD"] : []))
        let target = random.pick([
            "*", "http://example.com/users/1", "users/1", "", "/a b", "/\u{0}", "/é", "/users/1\r\nX: y",
            "/" + String(repeating: "a", count: 1_100), "/%", "/%%%", "/users/%C0%AF",
        ])
        let version = random.pick(["HTTP/1.1", "HTTP/1.0", "HTTP/0.9", "HTTP/2.0", "HTTP/1.1x", "HTTP/1", "", "http/1.1"])
        var headers = random.chance(0.8) ? ["Host: fuzz"] : []
        var body: [UInt8] = []
        for _ in 0..<random.int(0...3) {
            switch random.int(0...13) {
            case 0: headers.append("Content-Length: " + random.pick(["-1", "abc", "99999999999999999999", "+5", " 5", "5, 6", ""]))
            case 1: headers += ["Content-Length: 5", "Content-Length: 6"]
            case 2: headers += ["Content-Length: 4", "Transfer-Encoding: chunked"]  // smuggling
            case 3: headers.append("Transfer-Encoding: " + random.pick(["chunked, gzip", "gzip", "chunked ", "xchunked", "identity"]))
            case 4: headers.append("Content-Length: \(HTTPInputGenerator.maxBodySize + random.int(1...10))")
            case 5: headers.append("X-Big: " + String(repeating: "b", count: maxHeaderSize + random.int(0...100)))
            case 6: headers += (0..<random.int(50...200)).map { "X-\($0): v" }
            case 7: headers.append(random.pick(["NoColon", " Leading: space", "Bad Name: v", "X: a\u{0}b", ": empty", "X:\u{1}"]))
            case 8: headers.append("X-Folded: a\r\n continued")
            case 9: headers.append(random.pick(["Connection: upgrade", "Upgrade: h2c", "Upgrade: websocket"]))
            case 10: headers.append("Expect: " + random.pick(["100-continue", "200-ok", ""]))
            case 11: headers.append("Content-Type: application/json")
            case 12: headers.append("Connection: " + random.pick(["close", "keep-alive", "close, keep-alive", "Close", ""]))
            default: headers.append("X-Unicode: " + random.pick(["é", "\u{FEFF}", "💥", "\u{FFFF}"]))
            }
        }
        switch random.int(0...4) {
        case 0: body = chunked(Array("hello".utf8), &random)
        case 1: body = Array(random.pick(["0\r\n\r\n", "zz\r\nab\r\n0\r\n\r\n", "5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n",
                                          "ffffffffffffffffff\r\n", "5\r\nhel"]).utf8)
        case 2: body = random.bytes(count: random.int(0...64), interesting: interestingBytes)
        default: break
        }
        let lineEnd = random.chance(0.9) ? "\r\n" : "\n"
        let head = "\(method) \(target) \(version)" + lineEnd + headers.joined(separator: lineEnd)
        return Request(bytes: Array((head + lineEnd + lineEnd).utf8) + body, wellFormed: false, closes: false)
    }

    /// `body` in chunked transfer coding, in random chunk sizes, sometimes with extensions and trailers.
    static func chunked(_ body: [UInt8], _ random: inout FuzzRandom) -> [UInt8] {
        var out: [UInt8] = []
        var rest = body[...]
        while !rest.isEmpty {
            let size = random.int(1...max(1, rest.count))
            out += Array(String(size, radix: 16).utf8) + (random.chance(0.1) ? Array(";x=y".utf8) : []) + [13, 10]
            out += rest.prefix(size) + [13, 10]
            rest = rest.dropFirst(size)
        }
        return out + Array((random.chance(0.1) ? "0\r\nX-Trailer: t\r\n\r\n" : "0\r\n\r\n").utf8)
    }

    /// Splits a stream into the chunks in which it arrives: whole, byte by byte, or anything between.
    static func chunks(_ bytes: [UInt8], _ random: inout FuzzRandom) -> [[UInt8]] {
        var chunks: [[UInt8]] = []
        var rest = bytes[...]
        let mode = random.int(0...3)
        while !rest.isEmpty {
            let size: Int
            switch mode {
            case 0: size = rest.count
            case 1: size = 1
            default: size = random.int(1...max(1, min(rest.count, 64)))
            }
            chunks.append(Array(rest.prefix(size)))
            rest = rest.dropFirst(size)
        }
        return chunks
    }
}

/// The responses a server wrote on one connection, parsed strictly.
struct ResponseStream {
    struct Response {
        var status: Int
        var headers: [(name: String, value: String)]
        var body: [UInt8]

        func header(_ name: String) -> String? {
            self.headers.first { $0.name.lowercased() == name }?.value
        }
    }

    /// The final (non-1xx) responses in order.
    var responses: [Response] = []
    /// Why the bytes are not a valid sequence of responses, or nil.
    var problem: String?

    /// Parses `bytes`; `headRequests[i]` says whether the i-th final response answers a HEAD request (no body).
    init(_ bytes: [UInt8], headRequests: [Bool] = []) {
        var rest = bytes[...]
        while !rest.isEmpty {
            guard let headEnd = Self.find([13, 10, 13, 10], in: rest) else {
                self.problem = "an incomplete response head: \(preview(Array(rest)))"
                return
            }
            let headText = String(decoding: rest[rest.startIndex..<headEnd], as: UTF8.self)
            rest = rest[(headEnd + 4)...]
            var lines = headText.components(separatedBy: "\r\n")
            let statusLine = lines.removeFirst().split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
            guard statusLine.count >= 2, statusLine[0] == "HTTP/1.1" || statusLine[0] == "HTTP/1.0",
                let status = Int(statusLine[1]), (100...599).contains(status)
            else {
                self.problem = "a bad status line: \(headText.prefix(200))"
                return
            }
            var headers: [(name: String, value: String)] = []
            for line in lines {
                guard let colon = line.firstIndex(of: ":"), !line[..<colon].isEmpty,
                    !line.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" })
                else {
                    self.problem = "a bad header line: \(line.prefix(200))"
                    return
                }
                headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            }
            var response = Response(status: status, headers: headers, body: [])
            if status < 200 { continue }  // 100 Continue: no body, a final response follows
            let isHead = self.responses.count < headRequests.count && headRequests[self.responses.count]
            let closes = response.header("connection")?.lowercased() == "close"
            if status != 204 && status != 304 {
                guard let lengthText = response.header("content-length") else {
                    // Without a length, only the end of the connection delimits the body (RFC 9112 §6.3).
                    guard closes, response.header("transfer-encoding") == nil else {
                        self.problem = "a \(status) response without Content-Length on a connection kept open"
                        return
                    }
                    response.body = Array(rest)
                    self.responses.append(response)
                    return
                }
                guard let length = Int(lengthText), length >= 0 else {
                    self.problem = "a \(status) response with Content-Length '\(lengthText)'"
                    return
                }
                if !isHead {
                    guard rest.count >= length else {
                        self.problem = "a body shorter than its Content-Length (\(rest.count) of \(length))"
                        return
                    }
                    response.body = Array(rest.prefix(length))
                    rest = rest.dropFirst(length)
                }
            }
            self.responses.append(response)
            if closes && !rest.isEmpty {
                self.problem = "bytes after a Connection: close response"
                return
            }
        }
    }

    private static func find(_ needle: [UInt8], in haystack: ArraySlice<UInt8>) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var index = haystack.startIndex
        while index <= haystack.endIndex - needle.count {
            if haystack[index..<(index + needle.count)].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }
}
