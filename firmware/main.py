# Entry point of the meter firmware (runs on every board unmodified).
import meter_app

meter_app.run()
