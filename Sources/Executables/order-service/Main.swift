import ArgumentParser
import OrderService

@main
enum Main {
    static func main() async {
        await OrderServiceCommand.main()
    }
}
