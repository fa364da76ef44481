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
}
