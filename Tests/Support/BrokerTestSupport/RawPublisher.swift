public import CRabbitMQ
import Foundation
import Messaging

/// An AMQP field value of any type the protocol has, for ``RawPublisher``: what any client on the broker may put in
/// a message's headers, whether or not this project would.
public indirect enum RawField: Sendable {
    case utf8([UInt8])
    case bytes([UInt8])
    case bool(Bool)
    case i8(Int8)
    case u8(UInt8)
    case i16(Int16)
    case u16(UInt16)
    case i32(Int32)
    case u32(UInt32)
    case i64(Int64)
    case u64(UInt64)
    case f32(Float)
    case f64(Double)
    case decimal(decimals: UInt8, value: UInt32)
    case timestamp(UInt64)
    case void
    case table([(String, RawField)])
    case array([RawField])

    /// A text value.
    public static func text(_ text: String) -> RawField { .utf8(Array(text.utf8)) }

    /// `depth` tables nested in one another (arrays when `arrays`), a string at the bottom.
    public static func nested(depth: Int, arrays: Bool) -> RawField {
        var value = RawField.text("bottom")
        for _ in 0..<depth { value = arrays ? .array([value]) : .table([("n", value)]) }
        return value
    }
}

/// Basic properties as raw as the wire: short strings as bytes (they need not be UTF-8), any 64-bit timestamp.
public struct RawProperties: Sendable {
    public var contentType: [UInt8]? = Array("application/json".utf8)
    public var messageID: [UInt8]?
    public var type: [UInt8]?
    public var timestamp: UInt64?
    public var headers: [(String, RawField)] = []

    public init(messageID: [UInt8]? = nil, type: [UInt8]? = nil, timestamp: UInt64? = nil, headers: [(String, RawField)] = []) {
        self.messageID = messageID
        self.type = type
        self.timestamp = timestamp
        self.headers = headers
    }
}

/// A bare rabbitmq-c publisher with confirms for hostile-input tests: it sends exactly the properties it is given,
/// with none of the checks of the project's `Publisher`. One connection per call; blocking.
public enum RawPublisher {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Publishes `body` to `queue` on the default exchange with `properties`, waits for the broker's confirm.
    public static func publish(url: String, queue: String, body: [UInt8], properties: RawProperties) throws {
        let configuration = try BrokerConfiguration(url: url)
        guard let state = amqp_new_connection() else { throw Failure(description: "out of memory") }
        defer { amqp_destroy_connection(state) }
        guard let socket = amqp_tcp_socket_new(state),
            amqp_socket_open(socket, configuration.host, Int32(configuration.port)) == AMQP_STATUS_OK.rawValue
        else { throw Failure(description: "cannot connect to \(configuration.host):\(configuration.port)") }
        var empty = amqp_table_t(num_entries: 0, entries: nil)
        let login = swift_amqp_login_plain(
            state, configuration.virtualHost, 0, 131_072, 0, &empty, configuration.user, configuration.password)
        guard login.reply_type == AMQP_RESPONSE_NORMAL else { throw Failure(description: "login failed") }
        _ = amqp_channel_open(state, 1)
        _ = amqp_confirm_select(state, 1)
        guard amqp_get_rpc_reply(state).reply_type == AMQP_RESPONSE_NORMAL else {
            throw Failure(description: "channel setup failed")
        }

        let status = properties.withEncoded { encoded, bytes in
            body.withUnsafeBytes { raw in
                amqp_basic_publish(
                    state, 1, amqp_bytes_t(len: 0, bytes: nil), bytes(Array(queue.utf8)), 1, 0, encoded,
                    amqp_bytes_t(len: raw.count, bytes: UnsafeMutableRawPointer(mutating: raw.baseAddress)))
            }
        }
        guard status == AMQP_STATUS_OK.rawValue else { throw Failure(description: "publish failed: \(status)") }
        var frame = amqp_frame_t()
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        guard amqp_simple_wait_frame_noblock(state, &frame, &timeout) == AMQP_STATUS_OK.rawValue,
            frame.frame_type == UInt8(AMQP_FRAME_METHOD), frame.payload.method.id == AMQP_BASIC_ACK_METHOD
        else { throw Failure(description: "the broker did not confirm the publish") }
        _ = amqp_connection_close(state, Int32(AMQP_REPLY_SUCCESS))
    }
}

extension RawProperties {
    /// These properties as rabbitmq-c's C struct (valid only inside `body`), with a function that copies bytes into
    /// the same scratch memory.
    public func withEncoded<T>(
        _ body: (UnsafeMutablePointer<amqp_basic_properties_t>, (_ bytes: [UInt8]) -> amqp_bytes_t) throws -> T
    ) rethrows -> T {
        var pool = amqp_pool_t()
        init_amqp_pool(&pool, 4096)
        defer { empty_amqp_pool(&pool) }
        func bytes(_ value: [UInt8]) -> amqp_bytes_t {
            let memory = amqp_pool_alloc(&pool, max(1, value.count))!
            value.withUnsafeBytes { memory.copyMemory(from: $0.baseAddress!, byteCount: value.count) }
            return amqp_bytes_t(len: value.count, bytes: memory)
        }
        func encodeField(_ value: RawField) -> amqp_field_value_t {
            var field = amqp_field_value_t()
            func kind(_ kind: amqp_field_value_kind_t) { field.kind = UInt8(kind.rawValue) }
            switch value {
            case .utf8(let text): kind(AMQP_FIELD_KIND_UTF8); field.value.bytes = bytes(text)
            case .bytes(let raw): kind(AMQP_FIELD_KIND_BYTES); field.value.bytes = bytes(raw)
            case .bool(let flag): kind(AMQP_FIELD_KIND_BOOLEAN); field.value.boolean = flag ? 1 : 0
            case .i8(let number): kind(AMQP_FIELD_KIND_I8); field.value.i8 = number
            case .u8(let number): kind(AMQP_FIELD_KIND_U8); field.value.u8 = number
            case .i16(let number): kind(AMQP_FIELD_KIND_I16); field.value.i16 = number
            case .u16(let number): kind(AMQP_FIELD_KIND_U16); field.value.u16 = number
            case .i32(let number): kind(AMQP_FIELD_KIND_I32); field.value.i32 = number
            case .u32(let number): kind(AMQP_FIELD_KIND_U32); field.value.u32 = number
            case .i64(let number): kind(AMQP_FIELD_KIND_I64); field.value.i64 = number
            case .u64(let number): kind(AMQP_FIELD_KIND_U64); field.value.u64 = number
            case .f32(let number): kind(AMQP_FIELD_KIND_F32); field.value.f32 = number
            case .f64(let number): kind(AMQP_FIELD_KIND_F64); field.value.f64 = number
            case .decimal(let decimals, let number):
                kind(AMQP_FIELD_KIND_DECIMAL); field.value.decimal = amqp_decimal_t(decimals: decimals, value: number)
            case .timestamp(let seconds): kind(AMQP_FIELD_KIND_TIMESTAMP); field.value.u64 = seconds
            case .void: kind(AMQP_FIELD_KIND_VOID)
            case .table(let entries): kind(AMQP_FIELD_KIND_TABLE); field.value.table = table(entries)
            case .array(let values):
                kind(AMQP_FIELD_KIND_ARRAY)
                let memory = amqp_pool_alloc(&pool, max(1, values.count) * MemoryLayout<amqp_field_value_t>.stride)!
                    .bindMemory(to: amqp_field_value_t.self, capacity: max(1, values.count))
                for (index, value) in values.enumerated() { (memory + index).initialize(to: encodeField(value)) }
                field.value.array = amqp_array_t(num_entries: Int32(values.count), entries: memory)
            }
            return field
        }
        func table(_ entries: [(String, RawField)]) -> amqp_table_t {
            let memory = amqp_pool_alloc(&pool, max(1, entries.count) * MemoryLayout<amqp_table_entry_t>.stride)!
                .bindMemory(to: amqp_table_entry_t.self, capacity: max(1, entries.count))
            for (index, (key, value)) in entries.enumerated() {
                (memory + index).initialize(to: amqp_table_entry_t(key: bytes(Array(key.utf8)), value: encodeField(value)))
            }
            return amqp_table_t(num_entries: Int32(entries.count), entries: memory)
        }

        var encoded = amqp_basic_properties_t()
        var flags = UInt32(AMQP_BASIC_DELIVERY_MODE_FLAG)
        encoded.delivery_mode = 2
        if let value = self.contentType { encoded.content_type = bytes(value); flags |= UInt32(AMQP_BASIC_CONTENT_TYPE_FLAG) }
        if let value = self.messageID { encoded.message_id = bytes(value); flags |= UInt32(AMQP_BASIC_MESSAGE_ID_FLAG) }
        if let value = self.type { encoded.type = bytes(value); flags |= UInt32(AMQP_BASIC_TYPE_FLAG) }
        if let value = self.timestamp { encoded.timestamp = value; flags |= UInt32(AMQP_BASIC_TIMESTAMP_FLAG) }
        if !self.headers.isEmpty { encoded.headers = table(self.headers); flags |= UInt32(AMQP_BASIC_HEADERS_FLAG) }
        encoded._flags = flags
        return try body(&encoded, bytes)
    }
}
