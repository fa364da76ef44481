import BrokerTestSupport
import CRabbitMQ
import Testing

@testable import Messaging

/// Received AMQP properties, as any client may send them: every field type at its edges and at random, nested
/// tables and arrays, short strings that are not UTF-8, any timestamp; encoded to the wire by rabbitmq-c, often
/// mutated, decoded by rabbitmq-c as on receive. Properties, for every input rabbitmq-c decodes: our decoding never
/// traps; the timestamp is kept as sent; once fitted to a frame size, a republish is always encodable in it.
struct AMQPPropertiesFuzzTests {
    @Test func receivedPropertiesDecodeWithoutTrappingAndFitEveryFrameSize() {
        Fuzz.run("amqp-properties", cases: 1_500, seed: 0xA11_C0DE) { fuzzCase in
            let properties = Self.properties(&fuzzCase.random)
            var wire = properties.withEncoded { encoded, _ -> [UInt8] in
                var buffer = [UInt8](repeating: 0, count: 1 << 20)
                let size = buffer.withUnsafeMutableBytes { raw in
                    amqp_encode_properties(
                        UInt16(AMQP_BASIC_CLASS), encoded, amqp_bytes_t(len: raw.count, bytes: raw.baseAddress))
                }
                return size < 0 ? [] : Array(buffer[0..<Int(size)])
            }
            guard !wire.isEmpty else { return }
            let mutated = fuzzCase.random.chance(0.3)
            if mutated {
                wire = Mutation.mutate(wire, count: 4, using: &fuzzCase.random, interesting: [0, 0xFF, 0x80, 0x41, 0x46])
            }
            fuzzCase.note(input: wire)
            var pool = amqp_pool_t()
            init_amqp_pool(&pool, 4096)
            defer { empty_amqp_pool(&pool) }
            var decoded: UnsafeMutableRawPointer?
            let status = wire.withUnsafeMutableBytes { raw in
                amqp_decode_properties(
                    UInt16(AMQP_BASIC_CLASS), &pool, amqp_bytes_t(len: raw.count, bytes: raw.baseAddress), &decoded)
            }
            guard status >= 0, let decoded else { return }  // rabbitmq-c refuses it: it never reaches a service
            let received = MessageProperties(decoding: decoded.assumingMemoryBound(to: amqp_basic_properties_t.self).pointee)
            if !mutated, let sent = properties.timestamp {
                #expect(received.timestamp == sent, "\(fuzzCase)")
            }
            for frameMax in [AMQPLimits.minimumFrameSize, 8_192, AMQPLimits.frameMax] {
                let fitted = received.fittedToAMQP(frameMax: frameMax, keeping: ["traceparent", "x-attempts"])
                #expect(fitted.properties.amqpProblem(frameMax: frameMax) == nil, "\(frameMax) bytes; \(fuzzCase)")
                #expect(fitted.properties.timestamp == received.timestamp, "\(fuzzCase)")
                let message = OutboundMessage(queue: "queue_order.dead", body: [], properties: fitted.properties)
                #expect(message.amqpProblem(frameMax: frameMax) == nil, "\(fuzzCase)")
            }
        }
    }

    private static func properties(_ random: inout FuzzRandom) -> RawProperties {
        func shortString() -> [UInt8]? {
            random.chance(0.2) ? nil : random.bytes(count: random.length(upTo: 255), interesting: [0xFF, 0xC3, 0x28, 0])
        }
        let timestamp: UInt64? =
            random.chance(0.2) ? nil : random.pick([0, 1, .max, .max - 1, 1 << 63, UInt64.random(in: 0 ... .max, using: &random)])
        var headers: [(String, RawField)] = []
        for index in 0..<random.length(upTo: 40) {
            let key = random.chance(0.1) ? random.pick(["traceparent", "x-attempts", "x-delivery-count"]) : "h\(index)"
            headers.append((key, field(&random, depth: random.int(0...12))))
        }
        return RawProperties(messageID: shortString(), type: shortString(), timestamp: timestamp, headers: headers)
    }

    private static func field(_ random: inout FuzzRandom, depth: Int) -> RawField {
        let kinds = depth > 0 ? 20 : 17
        switch random.int(0...kinds) {
        case 0: return .utf8(random.bytes(count: random.length(upTo: 300), interesting: [0xFF, 0xE2, 0x80, 0xA8]))
        case 1: return .bytes(random.bytes(count: random.length(upTo: 300)))
        case 2: return .bool(random.chance(0.5))
        case 3: return .i8(random.pick([.min, -1, 0, .max]))
        case 4: return .u8(random.pick([0, .max]))
        case 5: return .i16(random.pick([.min, 0, .max]))
        case 6: return .u16(random.pick([0, .max]))
        case 7: return .i32(random.pick([.min, -1, .max]))
        case 8: return .u32(random.pick([0, .max]))
        case 9: return .i64(random.pick([.min, -1, 0, .max]))
        case 10: return .u64(random.pick([0, .max, UInt64.random(in: 0 ... .max, using: &random)]))
        case 11: return .f32(random.pick([0, -0.0, .greatestFiniteMagnitude, .leastNonzeroMagnitude, .nan, .infinity]))
        case 12: return .f64(random.pick([-0.0, .greatestFiniteMagnitude, -.leastNonzeroMagnitude, .nan, -.infinity, 1e-300]))
        case 13: return .decimal(decimals: random.pick([0, 2, 255]), value: random.pick([0, 1, .max]))
        case 14: return .timestamp(random.pick([0, .max, UInt64.random(in: 0 ... .max, using: &random)]))
        case 15: return .void
        case 16, 17: return .text(random.pick(["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "5", "", "é"]))
        case 18: return .table((0..<random.length(upTo: 4)).map { ("k\($0)", field(&random, depth: depth - 1)) })
        default: return .array((0..<random.length(upTo: 4)).map { _ in field(&random, depth: depth - 1) })
        }
    }
}
