"""booking: activities' calendars, eligibility, deadlines and parents' bookings."""
