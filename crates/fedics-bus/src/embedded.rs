pub struct EmbeddedBus;
