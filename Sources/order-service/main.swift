import OrderService

await OrderServiceCommand.main()
