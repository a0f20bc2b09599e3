import { Module } from '@nestjs/common';

import { DashboardController, HealthController } from './dashboard.controller';
import { EventsGateway } from './events.gateway';

/** One module, as in the seed: the HTTP controller and the socket.io gateway it feeds. */
@Module({
  controllers: [DashboardController, HealthController],
  providers: [EventsGateway],
})
export class AppModule {}
