import PostgresStorage
import Testing

@testable import ServiceRuntime

/// `USER_DB_URL` / `ORDER_DB_URL`: SQLite paths and URLs as before, and PostgreSQL URLs whose password never shows.
struct DatabaseURLTests {
    @Test(arguments: ["postgres", "postgresql", "POSTGRES"])
    func aPostgresURLNamesTheServerAndDatabase(_ scheme: String) throws {
        let location = try Setting.database("\(scheme)://app:s%40cret@db.internal:6543/users", setting: "USER_DB_URL")
        guard case .postgres(let postgres) = location else {
            Issue.record("not PostgreSQL: \(location)")
            return
        }
        #expect(postgres.host == "db.internal" && postgres.port == 6543 && postgres.database == "users")
        #expect(postgres.username == "app" && postgres.password == "s@cret" && postgres.tls == .prefer)
        #expect(location.description == "postgres://app:***@db.internal:6543/users")
        #expect(!location.description.contains("cret"))
    }

    @Test func defaultsAndSSLMode() throws {
        let location = try Setting.database("postgres://app@localhost/orders?sslmode=require", setting: "ORDER_DB_URL")
        #expect(
            location
                == .postgres(
                    PostgresEndpoint(
                        host: "localhost", port: 5432, username: "app", password: nil, database: "orders",
                        tls: .require)))
        #expect(location.description == "postgres://app@localhost:5432/orders?sslmode=require")
    }

    @Test(arguments: [
        "postgres://app:topsecret@/users",  // no host
        "postgres://app:topsecret@host:5432",  // no database
        "postgres://app:topsecret@host:5432/",  // no database
        "postgres://:topsecret@host/users",  // no user
        "postgres://app:topsecret@host/users?sslmode=sometimes",
        "postgres://app:topsecret@host/users?pool=3",
        "postgres://app:topsecret@host:99999/users",
    ])
    func aBadPostgresURLIsRefusedWithoutItsPassword(_ url: String) {
        do {
            let location = try Setting.database(url, setting: "USER_DB_URL")
            Issue.record("accepted: \(location)")
        } catch let error as ConfigurationError {
            #expect(error.setting == "USER_DB_URL")
            #expect(!error.description.contains("topsecret"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func sqliteStaysTheDefaultForm() throws {
        #expect(try Setting.database("sqlite:///data/users.sqlite", setting: "USER_DB_URL") == .sqlite(path: "data/users.sqlite"))
        #expect(try Setting.database("users.sqlite", setting: "USER_DB_URL") == .sqlite(path: "users.sqlite"))
        #expect(throws: ConfigurationError.self) { try Setting.database("mysql://x@y/z", setting: "USER_DB_URL") }
    }
}
