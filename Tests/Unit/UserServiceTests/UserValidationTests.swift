import Foundation
import HTTPServer
import NIOHTTP1
import Testing

@testable import UserService

struct UserValidationTests {
    @Test func namesAreTrimmedAndBounded() throws {
        #expect(try UserValidation.name("  Alice \n") == "Alice")
        #expect(try UserValidation.name(String(repeating: "é", count: 100)).count == 100)
        for bad in ["", "   ", String(repeating: "a", count: 101), "a\u{0}b"] {
            #expect(throws: (any Error).self, "\(bad.debugDescription)") { try UserValidation.name(bad) }
        }
    }

    @Test(arguments: ["alice@example.com", "a.b+c@sub.example.co", "x@bücher.de"])
    func plausibleEmailsPass(email: String) throws {
        #expect(try UserValidation.email(email) == email)
    }

    @Test(arguments: [
        "", "plain", "@example.com", " bob@example.org ", "a@", "a@b", "a@@b.com", "a b@example.com", "a@exa mple.com",
        "a@-bad.com", "a@bad-.com", "a@double..dot.com",
        String(repeating: "a", count: 65) + "@example.com",
        "a@" + String(repeating: "b", count: 250) + ".com",
    ])
    func implausibleEmailsAreRefusedNamingTheField(email: String) {
        do {
            _ = try UserValidation.email(email)
            Issue.record("accepted \(email)")
        } catch {
            #expect(error.status == .unprocessableEntity)
            #expect(error.detail.hasPrefix("email:"))
        }
    }

    /// One letter and 300,000 combining marks is one character of 600 kB: refused by its bytes.
    @Test func namesAreBoundedInBytes() throws {
        let stacked = "a" + String(repeating: "\u{301}", count: 300_000)
        #expect(stacked.count == 1)
        #expect(throws: HTTPError.self) { try UserValidation.name(stacked) }
        // 60 characters of 7 bytes each (a letter and three marks): few characters, too many bytes.
        let marked = String(repeating: "e\u{301}\u{302}\u{303}", count: 60)
        do {
            _ = try UserValidation.name(marked)
            Issue.record("accepted a name of \(marked.utf8.count) bytes")
        } catch {
            #expect(error.status == .unprocessableEntity)
            #expect(error.detail == "name: must be at most 400 bytes (UTF-8)")
        }
        // 100 four-byte characters: exactly at both limits.
        #expect(try UserValidation.name(String(repeating: "😀", count: 100)).utf8.count == 400)
    }

    @Test func emailsAreBoundedInBytes() {
        // 127 two-byte letters in the domain: 254 characters' worth of room would accept it, bytes do not.
        let email = "a@" + String(repeating: "ü", count: 126) + ".de"
        #expect(email.count < 254 && email.utf8.count > 254)
        #expect(throws: HTTPError.self) { try UserValidation.email(email) }
    }

    @Test(arguments: ["", String(repeating: "k", count: 256), "key\u{1}", "kéy", "key\u{7F}"])
    func idempotencyKeysAreVisibleASCIIUpTo255Bytes(key: String) {
        #expect(throws: HTTPError.self) { try UserValidation.idempotencyKey(key) }
    }

    @Test func pathIdsAreBoundedInBytes() throws {
        #expect(try UserValidation.id(UUID().uuidString.lowercased()).utf8.count == 36)
        #expect(throws: HTTPError.self) { try UserValidation.id(String(repeating: "é", count: 33)) }
    }

    /// The per-field limits bound a page: 500 users made of the largest values validation accepts (in JSON, after
    /// escaping) stay under 700 kB.
    @Test func aFullPageOfMaximalUsersIsBounded() throws {
        let names = [
            String(repeating: "😀", count: 100), String(repeating: "\"", count: 100),
            String(repeating: "\\\u{301}", count: 100), "a" + String(repeating: "\u{301}", count: 300_000),
            String(repeating: "x", count: 100),
        ].compactMap { try? UserValidation.name($0) }
        let emails = [
            String(repeating: "\"", count: 64) + "@" + String(repeating: "b", count: 63) + "."
                + String(repeating: "c", count: 63) + "." + String(repeating: "d", count: 61),
            "a@" + String(repeating: "ü", count: 125) + ".de",
        ].compactMap { try? UserValidation.email($0) }
        #expect(!names.isEmpty && !emails.isEmpty)
        func encodedSize(_ name: String, _ email: String) -> Int {
            let user = User(
                id: UUID().uuidString.lowercased(), name: name, email: email, version: Int64.max,
                createdAt: "2026-11-24T10:00:00.123456Z", updatedAt: "2026-11-24T10:00:00.123456Z")
            return HTTPResponse.json(UserBody(user)).body.count
        }
        let largest = names.flatMap { name in emails.map { encodedSize(name, $0) } }.max() ?? 0
        #expect(largest * 500 < 700_000, "a user encodes to \(largest) bytes")
    }
}

/// The ids the user service gives users and events: random version-4 UUIDs in lowercase, never repeated.
struct NewIdentifierTests {
    @Test func idsAreLowercaseVersion4UUIDs() throws {
        let ids = (0..<10_000).map { _ in UserStoreRules.newID() }
        #expect(Set(ids).count == ids.count)
        for id in ids.prefix(200) {
            let parsed = try #require(UUID(uuidString: id), "\(id) is a UUID")
            #expect(id == parsed.uuidString.lowercased())
            let bytes = withUnsafeBytes(of: parsed.uuid) { Array($0) }
            #expect(bytes[6] >> 4 == 4, "version 4: \(id)")
            #expect(bytes[8] >> 6 == 0b10, "RFC 4122 variant: \(id)")
        }
    }
}
